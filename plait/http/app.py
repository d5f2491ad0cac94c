"""The composition root of the HTTP service. No I/O happens before the lifespan starts.

    app = create_app("sqlite:///plait.db", token="...")

The lifespan opens the store (running its migrations), creates the application service and
starts it (projector, run recovery); on shutdown it ends the event streams, stops the runs
(resumable) and closes the store. A `plait` passed in is the caller's: the app uses it but
neither starts nor closes it.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import BaseRoute

from plait.eventstore import SqlEventStore, configured_url
from plait.execution.service import Plait
from plait.execution.settings import Settings
from plait.http import routes_details, routes_ops, routes_projects, routes_runs, sse
from plait.http.errors import EXCEPTION_HANDLERS
from plait.http.metrics import Metrics
from plait.http.security import GuardMiddleware, resolve_token
from plait.http.state import (
    DEFAULT_ALLOWED_HOSTS,
    MAX_BODY_BYTES,
    OPEN_PATHS,
    AppConfig,
    Runtime,
)


def all_routes() -> list[BaseRoute]:
    return [
        *routes_projects.routes,
        *routes_runs.routes,
        *routes_details.routes,
        *sse.routes,
        *routes_ops.routes,
    ]


def create_app(
    store_url: str | None = None,
    *,
    token: str | None = None,
    plait: Plait | None = None,
    heartbeat: float = 15.0,
    allowed_hosts: Iterable[str] = DEFAULT_ALLOWED_HOSTS,
    max_body: int = MAX_BODY_BYTES,
    settings: Settings | None = None,
    open_paths: Iterable[str] = OPEN_PATHS,
) -> Starlette:
    """The plait HTTP app.

    `store_url`: the event store (default: $PLAIT_DATABASE_URL, else the user's SQLite file);
    ignored when `plait` is given. `token`: the bearer token every request needs but reads
    of `open_paths` (default: $PLAIT_TOKEN, else the one kept in the data directory).
    `heartbeat`: seconds of quiet before an event stream sends `: ping`. `allowed_hosts`:
    Host header names served (lowercase; IPv6 in brackets). `settings`: for the Plait the
    lifespan creates.
    """
    config = AppConfig(
        store_url=store_url,
        token=token,
        heartbeat=heartbeat,
        allowed_hosts=frozenset(h.lower() for h in allowed_hosts),
        max_body=max_body,
        open_paths=frozenset(open_paths),
    )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        config.closing = asyncio.Event()
        if config.token is None:
            config.token = await asyncio.to_thread(resolve_token)
        async with _runtime(config, plait, settings) as runtime:
            app.state.runtime = runtime
            # Everything loaded so far (SQLAlchemy, the migrations, the service) lives as
            # long as the server: keep it out of the garbage collector's full passes, which
            # otherwise stall every event stream at once now and then.
            gc.freeze()
            try:
                yield
            finally:
                config.closing.set()
                app.state.runtime = None

    app = Starlette(
        routes=all_routes(),
        middleware=[Middleware(GuardMiddleware, config=config)],
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=lifespan,
    )
    app.state.config = config
    app.state.runtime = None
    return app


@asynccontextmanager
async def _runtime(
    config: AppConfig, given: Plait | None, settings: Settings | None
) -> AsyncIterator[Runtime]:
    if given is not None:
        yield _make_runtime(given)
        return
    url = configured_url(config.store_url)
    store = await asyncio.to_thread(SqlEventStore, url)
    try:
        plait = Plait(store, settings)
        await plait.start(watch=True)  # every server takes over runs whose lease lapsed
        try:
            yield _make_runtime(plait)
        finally:
            await plait.close()
    finally:
        await asyncio.to_thread(store.close)


def _make_runtime(plait: Plait) -> Runtime:
    projector = plait.projector
    supervisor = plait.supervisor
    metrics = Metrics(
        plait.store, plait.read, lambda: projector.position, lambda: supervisor.takeover_checks
    )
    return Runtime(plait=plait, store=plait.store, read=plait.read, metrics=metrics)


def begin_shutdown(app: Starlette) -> None:
    """End every open event stream now, so a server's graceful shutdown is not held up."""
    config: AppConfig = app.state.config
    config.closing.set()
