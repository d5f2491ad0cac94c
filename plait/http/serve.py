"""`plait serve`: run the HTTP service under uvicorn and print the dashboard's address."""

from __future__ import annotations

import socket
import sys
from collections.abc import Callable
from types import FrameType
from typing import TextIO

import uvicorn
from starlette.applications import Starlette

from plait.eventstore import SqlEventStore, StoreError, configured_url
from plait.eventstore.urls import normalise_url
from plait.execution.runners.child_watch import pidfd_children
from plait.execution.settings import Settings
from plait.http.app import begin_shutdown, create_app
from plait.http.security import redact_logs, resolve_token
from plait.http.state import DEFAULT_ALLOWED_HOSTS, OPEN_PATHS

GRACEFUL_SECONDS = 5


class PlaitServer(uvicorn.Server):
    """A uvicorn server that knows its app: it reports its address once it listens and ends
    the app's event streams first when it shuts down (else they would hold it open)."""

    def __init__(
        self, config: uvicorn.Config, app: Starlette, on_ready: Callable[[str], None] | None
    ) -> None:
        super().__init__(config)
        self.app = app
        self.on_ready = on_ready
        self.base_url = ""

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        with pidfd_children():  # git and task processes reaped without a thread each
            await super().serve(sockets)

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.should_exit or not self.servers:
            return
        host, port = self.servers[0].sockets[0].getsockname()[:2]
        self.base_url = f"http://{url_host(host)}:{port}"
        if self.on_ready is not None:
            self.on_ready(self.base_url)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        begin_shutdown(self.app)
        await super().shutdown(sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        # uvicorn re-raises the signal once it has stopped; for `plait serve` SIGINT and
        # SIGTERM mean "stop serving", after which serve() returns its exit code.
        captured = getattr(self, "_captured_signals", None)
        if isinstance(captured, list):
            captured.clear()


def url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def build_server(
    app: Starlette,
    host: str,
    port: int,
    on_ready: Callable[[str], None] | None = None,
    log_level: str = "info",
) -> PlaitServer:
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        lifespan="on",
        log_level=log_level,
        timeout_graceful_shutdown=GRACEFUL_SECONDS,
        proxy_headers=False,
        server_header=False,
    )
    # uvicorn has configured its loggers by now; its access log shows each request line.
    redact_logs("uvicorn.access", "uvicorn.error")
    return PlaitServer(config, app, on_ready)


def serve(
    host: str,
    port: int,
    db_url: str | None,
    token: str | None,
    *,
    out: TextIO | None = None,
    settings: Settings | None = None,
    open_paths: tuple[str, ...] = OPEN_PATHS,
) -> int:
    """Serve until interrupted. 0 after a clean stop; 2 if the service could not start.

    `open_paths`: the paths anyone may read without the token."""
    out = out or sys.stdout
    try:
        url = configured_url(db_url)
        # Open the store once first (this also runs its migrations): an unreachable database
        # is one line here, not uvicorn's startup traceback.
        SqlEventStore(normalise_url(url)).close()
        token = resolve_token(token)
    except (StoreError, OSError) as exc:
        print(f"plait serve: {exc}", file=sys.stderr)
        return 2
    allowed = (*DEFAULT_ALLOWED_HOSTS, url_host(host).lower())
    settings = settings or Settings()
    app = create_app(
        url, token=token, allowed_hosts=allowed, settings=settings, open_paths=open_paths
    )

    def announce(base_url: str) -> None:
        shown = base_url.replace("[::]", "[::1]").replace("0.0.0.0", "127.0.0.1")
        print(
            f"\n    plait dashboard: {shown}/?token={token}\n"
            f"    API token (Authorization: Bearer ...): {token}\n",
            file=out,
            flush=True,
        )

    server = build_server(app, host, port, announce)
    try:
        server.run()
    except SystemExit as exc:  # uvicorn exits this way when it cannot bind or start the app
        return 2 if exc.code else 0
    except KeyboardInterrupt:
        return 0
    return 0 if server.started else 2
