"""The HTTP API under generated and hostile requests: never a 5xx, never a stack trace, always
a JSON error body, and nothing created outside plait's own files.

schemathesis generates requests from the app's own /openapi.json (bounded examples, so it
fits in CI); the hand-written cases below add what a schema cannot express: oversized and
undecodable bodies, hostile ids in the URL, wrong content types.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.core.result import Ok
from starlette.applications import Starlette

from tests.gitrepo import make_repo
from tests.integration.http_support import AUTH, TOKEN, running, settings_for, sqlite_url
from tests.reliability.fault_helpers import refs, tree_listing

MAX_EXAMPLES = 25  # per operation: bounded for CI
# Event streams never end by themselves; they are fuzzed by the hand-written cases below.
STREAMS = r"/events$"


def _error_body_problem(response: Any) -> str | None:
    """Why `response` is not a clean answer, or None."""
    status = response.status_code
    text = response.text
    if status >= 500:
        return f"{status}: {text[:500]}"
    if "Traceback" in text or 'File "/' in text:
        return f"a stack trace in a {status}: {text[:500]}"
    if status >= 400:
        try:
            error = json.loads(text)["error"]
        except (ValueError, KeyError, TypeError):
            return f"{status} without a JSON error body: {text[:200]!r}"
        if not isinstance(error.get("code"), str) or not isinstance(error.get("message"), str):
            return f"{status} with a malformed error body: {error!r}"
    return None


@pytest.fixture(scope="module")
def fuzz_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("fuzz")
    empty = root / "cwd"
    empty.mkdir()
    # Relative paths a fuzzer sends ('.', 'x', '~') resolve in an empty, non-git directory.
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(empty)
        patch.setenv("HOME", str(empty))
        yield root


@pytest.fixture(scope="module")
def fuzz_app(fuzz_root: Path) -> Iterator[Starlette]:
    from plait.http.app import create_app

    app = create_app(
        sqlite_url(fuzz_root),
        token=TOKEN,
        settings=settings_for(fuzz_root),
        allowed_hosts=("testserver", "127.0.0.1", "localhost"),
    )
    yield app
    from schemathesis.python import asgi

    asgi.shutdown_lifespans()  # closes the app's store and service


@pytest.mark.parametrize(
    "mode", [schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE]
)
def test_generated_requests_get_no_5xx_and_json_errors(
    mode: schemathesis.GenerationMode, fuzz_app: Starlette
) -> None:
    """Every operation of /openapi.json, with requests that fit its schema (positive) and
    requests that do not (negative), with the token and without it."""
    loaded = schemathesis.openapi.from_asgi("/openapi.json", fuzz_app, headers=AUTH)
    schema = loaded.exclude(path_regex=STREAMS)
    operations = [result.ok() for result in schema.get_all_operations() if isinstance(result, Ok)]
    assert len(operations) >= 8
    fuzzed = 0
    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def check(case: Any) -> None:
            for headers in (AUTH, {}):
                response = case.call(headers=headers)
                problem = _error_body_problem(response)
                assert problem is None, f"{case.method} {case.formatted_path}: {problem}"

        try:
            check()
        except Unsatisfiable:
            # Nothing in this operation can be made invalid (no parameters, no body).
            assert mode is schemathesis.GenerationMode.NEGATIVE, operation.label
            continue
        fuzzed += 1
    assert fuzzed >= len(operations) // 2


def test_the_fuzzing_left_nothing_outside_plaits_own_files(fuzz_root: Path) -> None:
    found = tree_listing(fuzz_root)
    assert not any(name.startswith("cwd/") for name in found), found
    stray = {n for n in found if not n.startswith(("plait.db", "logs", "worktrees", "cwd"))}
    assert stray == set()


# -- hand-written hostile requests -----------------------------------------------------------

NASTY_IDS = [
    "..",
    "..%2F..%2Fetc%2Fpasswd",
    "%2e%2e",
    "--upload-pack=x",
    "refs%2Fheads%2Fmain",
    "a..b",
    "x.lock",
    "%D1%80%D0%B0rser",  # Cyrillic look-alike of "parser"
    "a%00b",
    "a" * 5000,
    "%ff%fe",
    "%C0%AE%C0%AE",  # overlong UTF-8 for ".."
]


@pytest.fixture
async def client(tmp_path: Path) -> Any:
    from plait.http.app import create_app

    app = create_app(
        sqlite_url(tmp_path), token=TOKEN, settings=settings_for(tmp_path), max_body=64 * 1024
    )
    async with running(app) as opened:
        yield opened


async def _request(client: Any, method: str, path: str, **kwargs: Any) -> httpx.Response:
    """One request; an answer that never ends (an event stream opened for a bad request)
    fails the test instead of hanging it (the in-process transport buffers responses)."""
    try:
        async with asyncio.timeout(30):
            response: httpx.Response = await client.request(method, path, **kwargs)
    except TimeoutError:
        raise AssertionError(f"{method} {path}: no complete answer (a stream?)") from None
    return response


def _assert_clean(response: httpx.Response) -> None:
    problem = _error_body_problem(response)
    assert problem is None, f"{response.request.method} {response.request.url}: {problem}"


async def test_hostile_ids_in_urls_are_refused_cleanly(client: Any, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    before = refs(repo)
    for bad in NASTY_IDS:
        for method, path in [
            ("GET", f"/api/projects/{bad}"),
            ("GET", f"/api/projects/{bad}/parallel/status"),
            ("POST", f"/api/projects/{bad}/parallel/start"),
            ("POST", f"/api/projects/{bad}/parallel/stop"),
            ("POST", f"/api/projects/{bad}/parallel/resume"),
            ("PUT", f"/api/projects/{bad}/plan"),
            ("GET", f"/api/projects/{bad}/history"),
            ("GET", f"/api/projects/{bad}/events"),
            ("GET", f"/api/runs/{bad}"),
        ]:
            if bad in ("..", "%2e%2e") and path.endswith("/events"):
                continue  # the client resolves it to /api/events, a valid (endless) stream
            response = await _request(client, method, path, headers=AUTH, json={"tasks": []})
            _assert_clean(response)
            assert response.status_code in (400, 404, 405), (path, response.status_code)
    assert refs(repo) == before


async def test_hostile_bodies_are_refused_cleanly(client: Any, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    created = await client.post("/api/projects", json={"path": str(repo)}, headers=AUTH)
    assert created.status_code == 201, created.text
    project = created.json()["project_id"]
    before = (refs(repo), tree_listing(repo))
    json_headers = {**AUTH, "Content-Type": "application/json"}
    yaml_headers = {**AUTH, "Content-Type": "application/yaml"}
    cases: list[tuple[str, str, dict[str, str], bytes]] = [
        ("POST", "/api/projects", json_headers, b"{"),
        ("POST", "/api/projects", json_headers, b"[]"),
        ("POST", "/api/projects", json_headers, b"\xff\xfe\x00"),
        ("POST", "/api/projects", json_headers, b'{"path": "\\ud800"}'),
        ("POST", "/api/projects", json_headers, b'{"path": "a\\u0000b"}'),
        ("POST", "/api/projects", json_headers, json.dumps({"path": str(loop)}).encode()),
        ("POST", "/api/projects", json_headers, json.dumps({"path": "../x"}).encode()),
        ("POST", "/api/projects", json_headers, json.dumps({"path": 5}).encode()),
        ("POST", "/api/projects", json_headers, json.dumps({"path": ["x"]}).encode()),
        ("POST", "/api/projects", json_headers, b"[" * 100_000),
        (
            "POST",
            "/api/projects",
            json_headers,
            json.dumps({"path": str(repo), "name": "\ud800"}).encode(),
        ),
        ("POST", "/api/projects", {**AUTH, "Content-Type": "text/plain"}, b"path=/"),
        ("PUT", f"/api/projects/{project}/plan", json_headers, b'{"tasks": [{"id": "\\ud800"}]}'),
        (
            "PUT",
            f"/api/projects/{project}/plan",
            json_headers,
            b'{"tasks": [{"id": "a", "run": "x", "title": "\\udfff"}]}',
        ),
        ("PUT", f"/api/projects/{project}/plan", json_headers, b'{"tasks": [], "bogus": 1}'),
        ("PUT", f"/api/projects/{project}/plan", yaml_headers, b"tasks: ["),
        ("PUT", f"/api/projects/{project}/plan", yaml_headers, b"!!python/object:os.system x"),
        ("PUT", f"/api/projects/{project}/plan", yaml_headers, b"\xff\xfe"),
        ("PUT", f"/api/projects/{project}/plan", yaml_headers, b"[" * 100_000),
        ("PUT", f"/api/projects/{project}/plan", json_headers, b"x" * (64 * 1024 + 1)),
        ("POST", "/api/projects", json_headers, b" " * (10 * 1024 * 1024)),
    ]
    for method, path, headers, raw in cases:
        response = await _request(client, method, path, headers=headers, content=raw)
        _assert_clean(response)
        assert 400 <= response.status_code < 500, (path, raw[:60], response.status_code)
    # Nothing landed in the repository, and no project beyond the one registered.
    assert (refs(repo), tree_listing(repo)) == before
    listed = (await client.get("/api/projects")).json()
    projects = listed["projects"] if isinstance(listed, dict) else listed
    assert [p["project_id"] for p in projects] == [project]


async def test_bad_query_and_header_values_are_refused_cleanly(client: Any) -> None:
    for path, headers in [
        ("/api/events?after=-1", {}),
        ("/api/events?after=1e3", {}),
        ("/api/events?after=%00", {}),
        ("/api/events", {"Last-Event-ID": "not-a-number"}),
        ("/api/events", {"Last-Event-ID": "-5"}),
        ("/api/projects/abc/history?until=yesterday", {}),
        ("/api/projects/abc/history?until=9" * 20, {}),
    ]:
        response = await _request(client, "GET", path, headers={**AUTH, **headers})
        _assert_clean(response)
        assert 400 <= response.status_code < 500, (path, headers, response.status_code)
        assert response.status_code != 401, (path, headers)  # refused for what it asks
