"""Helpers for the HTTP tests: an app with its lifespan, a real uvicorn, real repositories."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import httpx
from starlette.applications import Starlette

from plait.execution.service import Plait
from plait.execution.settings import Settings
from plait.http.app import create_app
from plait.http.serve import PlaitServer, build_server
from tests.gitrepo import make_repo

TOKEN = "test-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
LOCAL = "http://127.0.0.1:8000"

# Two tasks that can run side by side, then one that needs both: two batches.
SMALL_PLAN: dict[str, Any] = {
    "tasks": [
        {"id": "hello", "run": "echo hi > a.txt", "files": ["a.txt"]},
        {"id": "world", "run": "echo world > b.txt", "files": ["b.txt"]},
        {"id": "both", "run": "cat a.txt b.txt > c.txt", "depends_on": ["hello", "world"]},
    ]
}


def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'plait.db'}"


def settings_for(tmp_path: Path) -> Settings:
    return Settings(log_root=tmp_path / "logs", worktree_root=tmp_path / "worktrees", stop_grace=1)


def new_app(tmp_path: Path, store_url: str | None = None, **kwargs: Any) -> Starlette:
    return create_app(
        store_url or sqlite_url(tmp_path),
        token=TOKEN,
        settings=settings_for(tmp_path),
        **kwargs,
    )


class AppClient(httpx.AsyncClient):
    """A client that talks to `app` in-process, with the bearer token on every request
    (`anonymous=True`: with none). (ASGITransport buffers whole responses, so event streams
    are tested against a real server instead.)"""

    def __init__(
        self, app: Starlette, *, transport_raises: bool = True, anonymous: bool = False
    ) -> None:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=transport_raises)
        super().__init__(transport=transport, base_url=LOCAL, headers=None if anonymous else AUTH)
        self.app = app

    @property
    def plait(self) -> Plait:
        plait: Plait = self.app.state.runtime.plait
        return plait


@asynccontextmanager
async def running(app: Starlette) -> AsyncIterator[AppClient]:
    """The app with its lifespan entered (ASGITransport does not run it), and a client."""
    async with app.router.lifespan_context(app), AppClient(app) as client:
        yield client


def a_repo(tmp_path: Path, name: str = "repo") -> Path:
    return make_repo(tmp_path / name)


async def registered_project(
    client: httpx.AsyncClient, repo: Path, plan: dict[str, Any] | None = None
) -> str:
    response = await client.post("/api/projects", json={"path": str(repo)}, headers=AUTH)
    assert response.status_code == 201, response.text
    project_id: str = response.json()["project_id"]
    if plan is not None:
        put = await client.put(f"/api/projects/{project_id}/plan", json=plan, headers=AUTH)
        assert put.status_code == 200, put.text
    return project_id


async def finished(client: AppClient, project_id: str) -> dict[str, Any]:
    """Wait until the project's current run's driver is done; then its status, as projected."""
    status = (await client.get(f"/api/projects/{project_id}/parallel/status")).json()
    assert status["run_id"], status
    await client.plait.wait_run(status["run_id"])
    await client.plait.wait_until_projected()
    done: dict[str, Any] = (await client.get(f"/api/projects/{project_id}/parallel/status")).json()
    return done


class LiveServer:
    """A real uvicorn on 127.0.0.1 and a free port, in a thread with its own event loop."""

    def __init__(self, app: Starlette, port: int = 0) -> None:
        self.app = app
        self.ready = threading.Event()
        self.server: PlaitServer = build_server(
            app, "127.0.0.1", port, on_ready=lambda _url: self.ready.set(), log_level="warning"
        )
        self.thread = threading.Thread(target=self.server.run, name="uvicorn", daemon=True)

    @property
    def url(self) -> str:
        return self.server.base_url

    def start(self) -> None:
        self.thread.start()
        while not self.ready.wait(timeout=0.5):
            assert self.thread.is_alive(), "uvicorn exited before it was ready"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join()


@contextmanager
def live_server(app: Starlette, port: int = 0) -> Iterator[LiveServer]:
    server = LiveServer(app, port)
    server.start()
    try:
        yield server
    finally:
        server.stop()
