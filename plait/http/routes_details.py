"""What the dashboard opens: the run list with filters, a run's timeline, a task attempt's
log by ranges, its diff, and a batch's test output. Reads only."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from plait.domain.gantt import spans
from plait.domain.ids import ID_REGEX
from plait.domain.run import RunState
from plait.domain.statuses import RunStatus
from plait.eventstore import StoredEvent
from plait.http.errors import ApiError
from plait.http.openapi import Op, body, documented, query, ref
from plait.http.params import checked_id, int_param
from plait.http.state import Runtime, runtime_of
from plait.projections.codec import run_stream
from plait.projections.logs import DEFAULT_LIMIT, MAX_LIMIT
from plait.projections.run_details import NotFound, attempt_log, batch_tests

RUN = "/api/runs/{run_id:plait_id}"


@documented(
    "get",
    Op(
        "List runs",
        {"200": body({"type": "array", "items": ref("RunSummary")}, "Newest first")},
        params=(
            query(
                "project_id",
                {"type": "string", "pattern": f"^{ID_REGEX}$"},
                "Only this project's runs",
            ),
            query(
                "status",
                {"type": "string"},
                "Only runs in these statuses, comma-separated: " + ", ".join(RunStatus),
            ),
            query("limit", {"type": "integer", "minimum": 1, "maximum": 1000}, "50"),
        ),
    ),
)
async def run_list(request: Request) -> JSONResponse:
    """The newest runs first; `project_id` and `status` (comma-separated) narrow them."""
    runtime = runtime_of(request)
    project_id = checked_id(request.query_params.get("project_id"), "project_id")
    wanted = [s for s in (request.query_params.get("status") or "").split(",") if s]
    unknown = sorted(set(wanted) - set(RunStatus))
    if unknown:
        known = ", ".join(RunStatus)
        raise ApiError(400, "bad_request", f"unknown status {', '.join(unknown)}: use {known}")
    limit = int_param(request, "limit", default=50, low=1, high=1000)
    await runtime.plait.wait_until_projected()
    runs = await asyncio.to_thread(
        lambda: runtime.read.runs(project_id, limit or 50, statuses=wanted)
    )
    return JSONResponse(runs)


async def state_or_404(runtime: Runtime, run_id: str) -> RunState:
    await runtime.plait.wait_until_projected()
    state = await asyncio.to_thread(runtime.read.run_state, run_id)
    if state is None:
        raise ApiError(404, "unknown_run", f"no run {run_id!r}")
    return state


@documented(
    "get", Op("Get a run's timeline", {"200": body(ref("Timeline"), "Spans for a Gantt chart")})
)
async def timeline(request: Request) -> JSONResponse:
    state = await state_or_404(runtime_of(request), request.path_params["run_id"])
    return JSONResponse(
        {
            "run_id": state.run_id,
            "status": state.status,
            "started_at": state.started_at or state.created_at,
            "ended_at": state.ended_at,
            "spans": spans(state),
        }
    )


@documented(
    "get",
    Op(
        "Get a task's log",
        {"200": body(ref("TaskLog"), "A slice of one attempt's output")},
        params=(
            query("attempt", {"type": "integer", "minimum": 1}, "Default: the last"),
            query("offset", {"type": "integer", "minimum": 0}, "From here (default 0)"),
            query(
                "limit",
                {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
                f"At most this much (default {DEFAULT_LIMIT})",
            ),
            query(
                "source",
                {"type": "string", "enum": ["file", "events"]},
                "events: the output as the events hold it (an agent's rendered for a "
                "person); default: the log file where it is, else the events",
            ),
        ),
    ),
)
async def task_log(request: Request) -> JSONResponse:
    runtime = runtime_of(request)
    state = await state_or_404(runtime, request.path_params["run_id"])
    attempt = int_param(request, "attempt", default=None, low=1, high=10_000)
    offset = int_param(request, "offset", default=0, low=0, high=2**62) or 0
    limit = int_param(request, "limit", default=DEFAULT_LIMIT, low=1, high=MAX_LIMIT)
    source = request.query_params.get("source") or None
    if source not in (None, "file", "events"):
        raise ApiError(400, "bad_request", "source must be file or events")
    events = _events(runtime, state.run_id)
    try:
        answer = await asyncio.to_thread(
            attempt_log,
            events,
            state,
            request.path_params["task_id"],
            attempt,
            offset,
            limit or DEFAULT_LIMIT,
            source,
        )
    except NotFound as exc:
        raise ApiError(404, "unknown_task", str(exc)) from None
    return JSONResponse(answer)


@documented(
    "get",
    Op(
        "Get a task's diff",
        {"200": body(ref("TaskDiff"), "Its changes against the commit it started on")},
        params=(
            query(
                "attempt",
                {"type": "integer", "minimum": 1},
                "Default: the last attempt with a commit",
            ),
        ),
    ),
)
async def task_diff(request: Request) -> JSONResponse:
    runtime = runtime_of(request)
    run_id, task_id = request.path_params["run_id"], request.path_params["task_id"]
    attempt = int_param(request, "attempt", default=None, low=1, high=10_000)
    diff = await runtime.plait.task_diff(run_id, task_id, attempt)
    return JSONResponse({"run_id": run_id, "task_id": task_id, **dataclasses.asdict(diff)})


@documented(
    "get",
    Op(
        "Get a batch's test output",
        {"200": body(ref("BatchTests"), "Every test run of the batch, culprits, conflicts")},
    ),
)
async def tests(request: Request) -> JSONResponse:
    runtime = runtime_of(request)
    state = await state_or_404(runtime, request.path_params["run_id"])
    events = await asyncio.to_thread(_events(runtime, state.run_id))
    try:
        answer: dict[str, Any] = await asyncio.to_thread(
            batch_tests, events, state, request.path_params["batch_id"]
        )
    except NotFound as exc:
        raise ApiError(404, "unknown_batch", str(exc)) from None
    return JSONResponse(answer)


def _events(runtime: Runtime, run_id: str) -> Any:
    def load() -> list[StoredEvent]:
        return runtime.store.read_stream(run_stream(run_id))

    return load


routes = [
    Route("/api/runs", run_list, methods=["GET"]),
    Route(f"{RUN}/timeline", timeline, methods=["GET"]),
    Route(f"{RUN}/tasks/{{task_id:plait_id}}/log", task_log, methods=["GET"]),
    Route(f"{RUN}/tasks/{{task_id:plait_id}}/diff", task_diff, methods=["GET"]),
    Route(f"{RUN}/batches/{{batch_id:int}}/tests", tests, methods=["GET"]),
]
