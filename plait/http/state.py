"""What an app holds: its settings (fixed at creation) and its runtime (opened in the lifespan)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from starlette.requests import HTTPConnection

from plait.eventstore import EventStore
from plait.execution.service import Plait
from plait.http.errors import ApiError
from plait.projections import ReadModels

if TYPE_CHECKING:
    from plait.http.metrics import Metrics
    from plait.http.sse_channels import Channel

DEFAULT_ALLOWED_HOSTS = ("127.0.0.1", "localhost", "[::1]")
MAX_BODY_BYTES = 1024 * 1024
# The only paths a request may read without the token (`plait serve --open-paths`): a load
# balancer's health check and a Prometheus scraper rarely carry credentials.
OPEN_PATHS = ("/healthz", "/metrics")


@dataclass
class AppConfig:
    store_url: str | None
    token: str | None
    heartbeat: float
    allowed_hosts: frozenset[str]
    max_body: int = MAX_BODY_BYTES
    open_paths: frozenset[str] = frozenset(OPEN_PATHS)
    # Set when the server shuts down, so open event streams end instead of holding it up.
    closing: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class Runtime:
    plait: Plait
    store: EventStore
    read: ReadModels
    metrics: Metrics
    # run_id -> project_id: fixed once a run exists, so one cache serves every stream.
    run_owners: dict[str, str] = field(default_factory=dict)
    # The event streams' channels: "" for every event, else a project id (see sse_channels).
    channels: dict[str, Channel] = field(default_factory=dict)


def config_of(conn: HTTPConnection) -> AppConfig:
    config: AppConfig = conn.app.state.config
    return config


def runtime_of(conn: HTTPConnection) -> Runtime:
    runtime: Runtime | None = getattr(conn.app.state, "runtime", None)
    if runtime is None:
        raise ApiError(503, "not_started", "the service is starting or stopping")
    return runtime
