"""Server-sent events: every stored event, live, resumable from `Last-Event-ID`.

`id:` is the event's global position, so a client that reconnects with the last id it saw
gets exactly the events after it: its channel (sse_channels.py) catches it up from the store
and then hands it each new event's frame, encoded once for every stream of the channel, with
nothing lost or repeated. A `: ping` comment goes out whenever the stream has been quiet for
`heartbeat` seconds. Database work happens only inside the generator, which ends when the
client goes away or the server shuts down.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import anyio
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route

from plait.eventstore import StoredEvent
from plait.http.errors import ApiError
from plait.http.openapi import JSON, Op, body, documented, query
from plait.http.params import after_position
from plait.http.sse_channels import Channel, Wanted
from plait.http.state import AppConfig, Runtime, config_of, runtime_of
from plait.projections.codec import project_stream, run_id_of, run_stream

RECONNECT_MS = 1000
HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
RESUME_FROM: tuple[JSON, ...] = (
    {
        "name": "Last-Event-ID",
        "in": "header",
        "required": False,
        "schema": {"type": "string", "pattern": "^[0-9]+$"},
        "description": "Resume after this position (sent by EventSource on reconnect).",
    },
    query("after", {"type": "string", "pattern": "^[0-9]+$"}, "Resume after this position."),
)
EVENT_STREAM = {
    "200": body(
        {"type": "string"},
        "Server-sent events: `id:` position, `event:` type, `data:` an Event as JSON; "
        "`: ping` heartbeats.",
        "text/event-stream",
    )
}


def envelope(event: StoredEvent) -> dict[str, Any]:
    data = event.data
    return {
        "position": event.position,
        "type": event.type,
        "stream_id": event.stream_id,
        "recorded_at": event.recorded_at.isoformat(),
        "run_id": run_id_of(event) or data.get("run_id"),
        "batch_id": data.get("batch_id"),
        "task_id": data.get("task_id"),
        "worktree_id": data.get("worktree_id"),
        "attempt": data.get("attempt"),
        "data": data,
    }


@functools.lru_cache(maxsize=4096)
def frame(event: StoredEvent) -> str:
    """The SSE frame of an event. Every subscriber is handed the same StoredEvent object by
    the store's live feed, so each frame is encoded once, not once per subscriber."""
    body = json.dumps(envelope(event), separators=(",", ":"), default=str)
    return f"id: {event.position}\nevent: {event.type}\ndata: {body}\n\n"


async def event_stream(
    runtime: Runtime, config: AppConfig, after: int, channel: Channel
) -> AsyncIterator[str]:
    """A `: ping` goes out at the first tick after `heartbeat` quiet seconds; the channel
    ticks at most a second apart, so a shutdown is noticed within a second."""
    frames = channel.follow(after)
    runtime.metrics.sse_clients.inc()
    quiet_since, sent = time.monotonic(), False
    try:
        yield f"retry: {RECONNECT_MS}\n\n"
        async for item in frames:
            if config.closing.is_set():
                break
            if item is not None:
                sent = True
                yield item[1]
            elif sent:
                quiet_since, sent = time.monotonic(), False
            elif time.monotonic() - quiet_since >= config.heartbeat:
                quiet_since = time.monotonic()
                yield ": ping\n\n"
    finally:
        runtime.metrics.sse_clients.dec()
        with anyio.CancelScope(shield=True), contextlib.suppress(RuntimeError):
            await frames.aclose()  # type: ignore[attr-defined]


def channel_of(runtime: Runtime, config: AppConfig, project_id: str | None) -> Channel:
    """The channel of every event (None) or of one project's, shared by all their streams."""
    key = project_id or ""
    channel = runtime.channels.get(key)
    if channel is None:
        wanted = _everything if project_id is None else project_filter(runtime, project_id)
        channel = Channel(runtime.store, wanted, frame, min(config.heartbeat, 1.0))
        runtime.channels[key] = channel
    return channel


def project_filter(runtime: Runtime, project_id: str) -> Wanted:
    own = project_stream(project_id)

    async def wanted(event: StoredEvent) -> bool:
        if event.stream_id == own:
            return True
        run_id = run_id_of(event)
        return run_id is not None and await owner_of(runtime, run_id, event) == project_id

    return wanted


async def owner_of(runtime: Runtime, run_id: str, event: StoredEvent) -> str | None:
    """The project a run belongs to: remembered from RunCreated (or from the project, when a
    stream opened), else asked for once: the runs this process drives from memory, on the
    loop; others from the read model, off it."""
    owners = runtime.run_owners
    if run_id not in owners:
        if event.type == "RunCreated":
            owner: str | None = str(event.data.get("project_id"))
        else:
            owner = runtime.plait.supervisor.project_of_driven(run_id)
        if owner is None:
            owner = await asyncio.to_thread(runtime.plait.project_of_run, run_id)
            if owner is None:
                owner = await asyncio.to_thread(_owner_from_store, runtime, run_id)
        if owner is None:
            return None
        owners[run_id] = owner
    return owners[run_id]


def _owner_from_store(runtime: Runtime, run_id: str) -> str | None:
    for stored in runtime.store.read_stream(run_stream(run_id)):
        if stored.type == "RunCreated":
            return str(stored.data.get("project_id"))
    return None


async def _everything(event: StoredEvent) -> bool:
    return True


def _response(request: Request, project_id: str | None) -> StreamingResponse:
    runtime, config = runtime_of(request), config_of(request)
    after = after_position(request)
    return StreamingResponse(
        event_stream(runtime, config, after, channel_of(runtime, config, project_id)),
        media_type="text/event-stream",
        headers=HEADERS,
    )


@documented("get", Op("Follow a project's events", EVENT_STREAM, params=RESUME_FROM))
async def project_events(request: Request) -> StreamingResponse:
    project_id: str = request.path_params["project_id"]
    runtime = runtime_of(request)
    project = await asyncio.to_thread(runtime.read.project, project_id)
    if project is None:
        raise ApiError(404, "unknown_project", f"no project {project_id!r}")
    # The project's current and latest runs are the ones whose events come next: known now,
    # the channel need not look up their owner (a thread hop and a read) on a live event,
    # which was the slowest event of a stream that opened after its run had started.
    for key in ("active_run_id", "last_run_id"):
        if project.get(key):
            runtime.run_owners.setdefault(str(project[key]), project_id)
    return _response(request, project_id)


@documented("get", Op("Follow every event", EVENT_STREAM, params=RESUME_FROM))
async def all_events(request: Request) -> StreamingResponse:
    return _response(request, None)


routes = [
    Route("/api/events", all_events, methods=["GET"]),
    Route("/api/projects/{project_id:plait_id}/events", project_events, methods=["GET"]),
]
