"""Reads need the token too: every route the app has, enumerated from the app itself, against
a real uvicorn; the dashboard's cookie; the open paths; no token in a real server's log."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from starlette.routing import Mount, Route

from plait.http.security import COOKIE, UNAUTHORIZED
from plait.http.state import OPEN_PATHS
from tests.integration.http_support import (
    AUTH,
    SMALL_PLAN,
    TOKEN,
    AppClient,
    LiveServer,
    a_repo,
    live_server,
    new_app,
    registered_project,
    running,
)

PARAM = re.compile(r"\{(\w+)(:\w+)?\}")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, dict[str, str]]]:
    """A real server with a project whose run has ended, and the ids to fill paths with."""
    tmp_path = tmp_path_factory.mktemp("auth")
    with live_server(new_app(tmp_path, heartbeat=1.0)) as server:
        with httpx.Client(base_url=server.url, timeout=60, headers=AUTH) as client:
            project = client.post("/api/projects", json={"path": str(a_repo(tmp_path))})
            project_id = project.json()["project_id"]
            assert client.put(f"/api/projects/{project_id}/plan", json=SMALL_PLAN).is_success
            started = client.post(f"/api/projects/{project_id}/parallel/start")
            run_id = started.json()["run_id"]
        plait = server.app.state.runtime.plait
        _wait(server, plait.wait_run(run_id))
        _wait(server, plait.wait_until_projected())
        ids = {"project_id": project_id, "run_id": run_id, "task_id": "hello", "batch_id": "1"}
        yield server, ids


def _wait(server: LiveServer, awaitable: object) -> None:
    import asyncio

    loop = server.server.servers[0].get_loop() if server.server.servers else None
    assert loop is not None
    asyncio.run_coroutine_threadsafe(awaitable, loop).result(timeout=120)  # type: ignore[arg-type]


def every_get(server: LiveServer, ids: dict[str, str]) -> list[str]:
    """A concrete path for every route of the app that answers GET."""
    paths = []
    for route in server.app.routes:
        if isinstance(route, Route) and route.methods and "GET" in route.methods:
            paths.append(PARAM.sub(lambda m: ids[m.group(1)], route.path))
        elif isinstance(route, Mount):
            paths.append(f"{route.path}/app.js")
    return paths


def status_of(client: httpx.Client, path: str, **kwargs: object) -> tuple[int, str]:
    """The status and the start of the body (an event stream is closed after its first line)."""
    with client.stream("GET", path, **kwargs) as response:  # type: ignore[arg-type]
        if response.status_code == 200:
            return 200, next(response.iter_lines(), "")
        return response.status_code, response.read().decode()


def test_the_enumeration_covers_the_streams_the_history_the_logs_and_the_openapi(
    served: tuple[LiveServer, dict[str, str]],
) -> None:
    server, ids = served
    paths = every_get(server, ids)
    run, project = ids["run_id"], ids["project_id"]
    for expected in (
        "/api/events",
        f"/api/projects/{project}/events",
        f"/api/projects/{project}/history",
        f"/api/runs/{run}/tasks/hello/log",
        f"/api/runs/{run}/tasks/hello/diff",
        "/openapi.json",
        "/",
        "/static/app.js",
    ):
        assert expected in paths
    assert len(paths) >= 17


def test_every_get_but_the_open_paths_is_refused_without_the_token(
    served: tuple[LiveServer, dict[str, str]],
) -> None:
    server, ids = served
    with httpx.Client(base_url=server.url, timeout=60) as anonymous:
        for path in every_get(server, ids):
            response = anonymous.get(path) if not path.endswith("/events") else None
            status, body = status_of(anonymous, path)
            if path in OPEN_PATHS:
                assert status == 200, path
                continue
            assert status == 401, (path, body)
            assert json.loads(body)["error"]["message"] == UNAUTHORIZED, body
            assert "Authorization: Bearer" in UNAUTHORIZED
            assert "?token=" in UNAUTHORIZED
            if response is not None:
                assert response.json()["error"]["code"] == "unauthorized"
                assert response.headers["www-authenticate"].startswith("Bearer")
            wrong = {"Authorization": "Bearer not-the-token", "Cookie": f"{COOKIE}={TOKEN}"}
            assert status_of(anonymous, path, headers=wrong)[0] == 401, path


def test_every_get_works_with_the_bearer_token(served: tuple[LiveServer, dict[str, str]]) -> None:
    server, ids = served
    with httpx.Client(base_url=server.url, timeout=60, headers=AUTH) as client:
        for path in every_get(server, ids):
            assert status_of(client, path)[0] == 200, path


def test_the_dashboard_address_sets_a_private_cookie_that_every_get_accepts(
    served: tuple[LiveServer, dict[str, str]],
) -> None:
    server, ids = served
    with httpx.Client(base_url=server.url, timeout=60) as browser:
        exchange = browser.get(f"/?token={TOKEN}")
        assert exchange.status_code == 303
        assert exchange.headers["location"] == "/"  # the query, and the token, dropped
        set_cookie = exchange.headers["set-cookie"]
        attributes = {a.strip().split("=")[0].lower() for a in set_cookie.split(";")}
        assert {"httponly", "samesite", "path"} <= attributes
        assert "samesite=strict" in set_cookie.lower()
        assert TOKEN not in set_cookie
        assert browser.cookies.get(COOKIE)
        for path in every_get(server, ids):
            assert status_of(browser, path)[0] == 200, path


def test_a_wrong_token_in_the_dashboard_address_sets_no_cookie(
    served: tuple[LiveServer, dict[str, str]],
) -> None:
    server, _ = served
    with httpx.Client(base_url=server.url, timeout=60) as browser:
        refused = browser.get("/?token=guess")
        assert refused.status_code == 401
        assert "set-cookie" not in refused.headers
        assert not browser.cookies


# --- the cookie on state-changing requests ----------------------------------------------------


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[AppClient]:
    async with running(new_app(tmp_path)) as opened:
        yield opened


@asynccontextmanager
async def cookie_client(client: AppClient) -> AsyncIterator[AppClient]:
    """A client of the same app that has only the dashboard's cookie."""
    async with AppClient(client.app, anonymous=True) as browser:
        exchange = await browser.get(f"/?token={TOKEN}")
        assert exchange.status_code == 303
        yield browser


async def test_the_cookie_starts_a_run_only_from_the_servers_own_origin(
    client: AppClient, tmp_path: Path
) -> None:
    project_id = await registered_project(client, a_repo(tmp_path), SMALL_PLAN)
    start = f"/api/projects/{project_id}/parallel/start"
    async with cookie_client(client) as browser:
        assert (await browser.post(start)).status_code == 401  # no Origin: not a page's fetch
        foreign = await browser.post(start, headers={"Origin": "http://evil.example"})
        assert foreign.status_code == 403
        status = (await browser.get(f"/api/projects/{project_id}/parallel/status")).json()
        assert status["run_id"] is None
        own = await browser.post(start, headers={"Origin": "http://127.0.0.1:8000"})
        assert own.status_code == 202, own.text


# --- the open paths are a setting ------------------------------------------------------------


async def test_the_open_paths_can_be_changed(tmp_path: Path) -> None:
    app = new_app(tmp_path, open_paths=("/openapi.json",))
    async with running(app) as client, AppClient(app, anonymous=True) as anonymous:
        assert (await anonymous.get("/openapi.json")).status_code == 200
        assert (await anonymous.get("/healthz")).status_code == 401
        assert (await anonymous.get("/metrics")).status_code == 401
        assert (await client.get("/healthz")).status_code == 200


# --- a real `plait serve`: its log never shows the token --------------------------------------


def test_a_real_plait_serve_logs_no_token(tmp_path: Path) -> None:
    token = "secret-token-4711-abcdef"
    log = tmp_path / "serve.log"
    argv = [
        *(sys.executable, "-m", "plait.cli", "serve", "--host", "127.0.0.1", "--port", "0"),
        *("--db", f"sqlite:///{tmp_path / 'plait.db'}", "--open-paths", "/healthz"),
    ]
    env = {**os.environ, "PLAIT_TOKEN": token, "XDG_DATA_HOME": str(tmp_path / "data")}
    with log.open("w") as err:
        process = subprocess.Popen(
            argv, env=env, stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL, text=True
        )
        try:
            assert process.stdout is not None
            address = next(
                line.split("plait dashboard:", 1)[1].strip()
                for line in process.stdout
                if "plait dashboard:" in line
            )
            base = address.partition("/?token=")[0]
            assert address == f"{base}/?token={token}"
            with httpx.Client(base_url=base, timeout=60, follow_redirects=True) as browser:
                assert browser.get(address).status_code == 200  # redirected, with the cookie
                assert browser.get(f"/api/projects?token={token}&x=1").status_code == 200
                assert browser.get("/healthz").status_code == 200
            with httpx.Client(base_url=base, timeout=60) as anonymous:
                assert anonymous.get("/metrics").status_code == 401  # not open any more
                assert anonymous.get(f"/api/events?after=0&token={token}x").status_code == 401
        finally:
            process.send_signal(signal.SIGINT)
            out = process.communicate(timeout=60)[0]  # uvicorn's access log goes to stdout
            assert process.returncode == 0
    text = out + log.read_text()
    assert '"GET /?token=[redacted] HTTP/1.1" 303' in text, text
    assert "GET /api/projects?token=[redacted]&x=1 HTTP/1.1" in text, text
    assert token not in text
