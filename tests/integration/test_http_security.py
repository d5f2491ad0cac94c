"""The guard in front of every route: token, Host, Origin, body size, ids; errors stay JSON."""

from __future__ import annotations

import stat
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from plait.eventstore import StoreUnavailable
from plait.execution.service import Registration
from plait.http.security import TOKEN_ENV, host_name, resolve_token
from tests.integration.http_support import (
    AUTH,
    SMALL_PLAN,
    TOKEN,
    AppClient,
    a_repo,
    new_app,
    registered_project,
    running,
)


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[AppClient]:
    async with running(new_app(tmp_path)) as opened:
        yield opened


@pytest.fixture
async def anonymous(client: AppClient) -> AsyncIterator[AppClient]:
    """A client of the same app that sends no token."""
    async with AppClient(client.app, anonymous=True) as opened:
        yield opened


@pytest.fixture
async def project_id(client: AppClient, tmp_path: Path) -> str:
    return await registered_project(client, a_repo(tmp_path), SMALL_PLAN)


def error_code(body: Any) -> str:
    assert set(body) == {"error"}
    assert set(body["error"]) >= {"code", "message"}
    code: str = body["error"]["code"]
    return code


# --- the token ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-token"},
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": TOKEN},
        {"Authorization": "Bearer "},
    ],
)
async def test_a_start_without_the_token_is_refused_and_starts_nothing(
    client: AppClient, anonymous: AppClient, project_id: str, headers: dict[str, str]
) -> None:
    response = await anonymous.post(f"/api/projects/{project_id}/parallel/start", headers=headers)
    assert response.status_code == 401
    assert error_code(response.json()) == "unauthorized"
    assert response.headers["www-authenticate"].startswith("Bearer")
    status = (await client.get(f"/api/projects/{project_id}/parallel/status")).json()
    assert status["run_id"] is None
    assert (await client.get("/healthz")).json()["position"] == 2


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/api/projects"),
        ("PUT", "/api/projects/abc/plan"),
        ("POST", "/api/projects/abc/parallel/stop"),
        ("POST", "/api/projects/abc/parallel/resume"),
        ("DELETE", "/api/projects/abc"),
    ],
)
async def test_every_state_changing_request_needs_the_token(
    anonymous: AppClient, method: str, path: str
) -> None:
    response = await anonymous.request(method, path, json={"path": "/tmp"})
    assert response.status_code == 401
    assert error_code(response.json()) == "unauthorized"


async def test_reads_need_the_token_too_but_health_and_metrics(
    client: AppClient, anonymous: AppClient, project_id: str
) -> None:
    # Every GET route, the event streams included, is enumerated in test_http_auth.py.
    for path in ("/api/projects", f"/api/projects/{project_id}", "/openapi.json", "/"):
        refused = await anonymous.get(path)
        assert refused.status_code == 401, path
        assert error_code(refused.json()) == "unauthorized"
        assert (await client.get(path)).status_code == 200, path
    for path in ("/healthz", "/metrics"):
        assert (await anonymous.get(path)).status_code == 200, path


def test_a_token_is_generated_once_and_kept_private(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    path = tmp_path / "data" / "token"
    first = resolve_token(None, path)
    assert len(first) >= 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert resolve_token(None, path) == first


def test_an_explicit_token_wins_over_the_environment_and_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "token"
    path.write_text("from-file\n")
    monkeypatch.setenv(TOKEN_ENV, "from-env")
    assert resolve_token("explicit", path) == "explicit"
    assert resolve_token(None, path) == "from-env"
    monkeypatch.delenv(TOKEN_ENV)
    assert resolve_token(None, path) == "from-file"


# --- Host and Origin ------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8000", "127.0.0.2", ""])
async def test_a_request_for_another_host_is_refused(client: AppClient, host: str) -> None:
    response = await client.get("/api/projects", headers={"Host": host})
    assert response.status_code == 421
    assert error_code(response.json()) == "misdirected_request"


@pytest.mark.parametrize("host", ["127.0.0.1:8000", "localhost", "LOCALHOST:1", "[::1]:8000"])
async def test_local_host_names_are_served(client: AppClient, host: str) -> None:
    assert (await client.get("/healthz", headers={"Host": host})).status_code == 200


async def test_the_bound_host_can_be_allowed(tmp_path: Path) -> None:
    app = new_app(tmp_path, allowed_hosts=["plait.internal"])
    async with running(app) as client:
        response = await client.get("/healthz", headers={"Host": "plait.internal:9000"})
        assert response.status_code == 200
        assert (await client.get("/healthz")).status_code == 421


@pytest.mark.parametrize("origin", ["http://evil.example", "null", "http://127.0.0.1:9999"])
async def test_a_cross_site_post_is_refused_even_with_the_token(
    client: AppClient, project_id: str, origin: str
) -> None:
    response = await client.post(
        f"/api/projects/{project_id}/parallel/start", headers={**AUTH, "Origin": origin}
    )
    assert response.status_code == 403
    assert error_code(response.json()) == "cross_origin"
    status = (await client.get(f"/api/projects/{project_id}/parallel/status")).json()
    assert status["run_id"] is None


async def test_a_post_from_the_servers_own_origin_is_accepted(
    client: AppClient, project_id: str
) -> None:
    response = await client.post(
        f"/api/projects/{project_id}/parallel/start",
        headers={**AUTH, "Origin": "http://127.0.0.1:8000"},
    )
    assert response.status_code == 202


def test_host_names_drop_their_port() -> None:
    assert host_name("Example.COM:80") == "example.com"
    assert host_name("[::1]:8000") == "[::1]"
    assert host_name("[::1]") == "[::1]"
    assert host_name("localhost") == "localhost"


# --- bodies and ids -------------------------------------------------------------------------


async def test_an_oversized_body_is_refused(client: AppClient, project_id: str) -> None:
    big = b"x" * (1024 * 1024 + 1)
    response = await client.put(
        f"/api/projects/{project_id}/plan",
        content=big,
        headers={**AUTH, "Content-Type": "application/yaml"},
    )
    assert response.status_code == 413
    assert error_code(response.json()) == "request_too_large"


async def test_an_oversized_body_without_a_length_is_refused(
    client: AppClient, project_id: str
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(20):
            yield b"#" * 65536 + b"\n"

    response = await client.put(
        f"/api/projects/{project_id}/plan",
        content=chunks(),
        headers={**AUTH, "Content-Type": "application/yaml"},
    )
    assert response.status_code == 413
    assert error_code(response.json()) == "request_too_large"


@pytest.mark.parametrize(
    "bad_id",
    ["..%2Fx", "..%2F..%2Fetc", "UPPER", "-leading", "a%20b", "a" * 64, "x%00y", "%2E%2E"],
)
async def test_an_invalid_id_in_a_path_matches_no_route(client: AppClient, bad_id: str) -> None:
    for method, path in [
        ("GET", f"/api/projects/{bad_id}"),
        ("GET", f"/api/projects/{bad_id}/parallel/status"),
        ("POST", f"/api/projects/{bad_id}/parallel/start"),
        ("GET", f"/api/runs/{bad_id}"),
    ]:
        response = await client.request(method, path, headers=AUTH)
        assert response.status_code == 404, (method, path)
        assert error_code(response.json()) == "not_found"


async def test_a_wrong_method_is_a_json_error(client: AppClient) -> None:
    response = await client.delete("/api/projects", headers=AUTH)
    assert response.status_code == 405
    assert error_code(response.json()) == "method_not_allowed"
    assert set(response.headers["allow"].split(", ")) == {"GET", "HEAD", "POST"}


# --- errors stay JSON -----------------------------------------------------------------------


async def test_an_unreachable_store_is_reported_as_unavailable(
    client: AppClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    def down() -> list[dict[str, Any]]:
        raise StoreUnavailable("database sqlite:///x is unavailable: disk I/O error")

    monkeypatch.setattr(client.app.state.runtime.read, "projects", down)
    response = await client.get("/api/projects")
    assert response.status_code == 503
    assert error_code(response.json()) == "store_unavailable"


async def test_an_unexpected_error_is_a_json_500_without_a_trace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(path: str, name: str | None = None) -> Registration:
        raise RuntimeError("secret internals")

    async with running(new_app(tmp_path)) as client:
        monkeypatch.setattr(client.plait, "register", broken)
        quiet = AppClient(client.app, transport_raises=False)
        async with quiet:
            response = await quiet.post("/api/projects", json={"path": "/x"}, headers=AUTH)
    assert response.status_code == 500
    assert error_code(response.json()) == "internal_error"
    assert "secret" not in response.text
    assert "Traceback" not in response.text


async def test_requests_before_the_lifespan_are_unavailable(tmp_path: Path) -> None:
    async with AppClient(new_app(tmp_path)) as client:
        response = await client.get("/api/projects")
    assert response.status_code == 503
    assert error_code(response.json()) == "not_started"
