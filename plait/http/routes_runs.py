"""Runs: the seed's start/status/stop (kept to the letter), resume, a run's status, history,
and what a user does with a stopped or failed run: land it, retry or skip a task.

Whether a start wins is decided by the store (an append with the expected version), not
here: a lost race arrives as RunAlreadyActive and maps to 409.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from plait.domain.ids import ID_REGEX
from plait.http.errors import ApiError
from plait.http.openapi import JSON, Op, body, documented, query, ref
from plait.http.params import checked_id, json_object, parse_until
from plait.http.routes_projects import project_or_404
from plait.http.state import Runtime, runtime_of

ACTION: JSON = {"required": False, "content": {"application/json": {"schema": ref("Action")}}}


def accepted(what: str) -> dict[str, JSON]:
    return {"202": body(ref("Accepted"), what)}


@documented("post", Op("Start a run", accepted("Parallel execution initiated")))
async def start(request: Request) -> JSONResponse:
    runtime = runtime_of(request)
    run_id = await runtime.plait.start_run(request.path_params["project_id"])
    runtime.metrics.runs_started.inc()
    body = {"status": "started", "message": "Parallel execution initiated", "run_id": run_id}
    return JSONResponse(body, 202)


@documented("post", Op("Stop the run", accepted("Stop requested")))
async def stop(request: Request) -> JSONResponse:
    run_id = await runtime_of(request).plait.stop_run(request.path_params["project_id"])
    return JSONResponse({"status": "stopping", "message": "Stop requested", "run_id": run_id}, 202)


@documented(
    "post", Op("Land a run", accepted("Landing its tested work on its base"), request=ACTION)
)
async def land(request: Request) -> JSONResponse:
    await json_object(request, (), required=False)
    run_id = await runtime_of(request).plait.land_run(request.path_params["run_id"])
    return JSONResponse({"status": "landing", "message": "Land requested", "run_id": run_id}, 202)


@documented(
    "post",
    Op("Retry a task", accepted("The task runs again; the run continues"), request=ACTION),
)
async def retry(request: Request) -> JSONResponse:
    return await _task_action(request, "retry")


@documented(
    "post",
    Op(
        "Skip a task",
        accepted("The run continues without it and its dependents"),
        request=ACTION,
    ),
)
async def skip(request: Request) -> JSONResponse:
    return await _task_action(request, "skip")


async def _task_action(request: Request, action: str) -> JSONResponse:
    await json_object(request, (), required=False)
    run_id, task_id = request.path_params["run_id"], request.path_params["task_id"]
    plait = runtime_of(request).plait
    use_case, status = {
        "retry": (plait.retry_task, "retrying"),
        "skip": (plait.skip_task, "skipping"),
    }[action]
    run_id = await use_case(run_id, task_id)
    message = f"{action.capitalize()} of {task_id} requested"
    return JSONResponse({"status": status, "message": message, "run_id": run_id}, 202)


@documented(
    "post",
    Op(
        "Resume a run",
        accepted("Resume requested"),
        request={
            "required": False,
            "content": {"application/json": {"schema": ref("ResumeRequest")}},
        },
    ),
)
async def resume(request: Request) -> JSONResponse:
    body = await json_object(request, ("run_id",), required=False)
    wanted = body.get("run_id")
    wanted = checked_id(wanted if isinstance(wanted, str) else None, "run_id")
    plait = runtime_of(request).plait
    run_id = await plait.resume_run(request.path_params["project_id"], wanted)
    return JSONResponse(
        {"status": "resuming", "message": "Resume requested", "run_id": run_id}, 202
    )


def idle_status(project: dict[str, Any]) -> dict[str, Any]:
    """The seed's fields for a project that has never run."""
    plan = project.get("plan") or {}
    return {
        "run_id": None,
        "project_id": project["project_id"],
        "status": None,
        "execution_mode": plan.get("mode") or "sequential",
        "reason": plan.get("reason", ""),
        "parallel_started_at": None,
        "batches_total": len(plan.get("batches") or []),
        "current_batch": None,
        "completed_batches": 0,
        "landed_commit": None,
        "error": None,
        "actions": [],
        "batches": [],
        "tasks": [],
    }


@documented(
    "get",
    Op(
        "Get the run status",
        {"200": body(ref("RunStatus"), "The active run's status, else the last run's")},
    ),
)
async def status(request: Request) -> JSONResponse:
    runtime = runtime_of(request)
    project = await project_or_404(runtime, request.path_params["project_id"])
    run_id = project.get("active_run_id") or project.get("last_run_id")
    view = await asyncio.to_thread(runtime.read.run_status, run_id) if run_id else None
    return JSONResponse(view or idle_status(project))


async def run_or_404(runtime: Runtime, run_id: str) -> dict[str, Any]:
    await runtime.plait.wait_until_projected()
    view = await asyncio.to_thread(runtime.read.run_status, run_id)
    if view is None:
        raise ApiError(404, "unknown_run", f"no run {run_id!r}")
    return view


@documented("get", Op("Get a run", {"200": body(ref("RunStatus"), "The run's status")}))
async def get_run(request: Request) -> JSONResponse:
    return JSONResponse(await run_or_404(runtime_of(request), request.path_params["run_id"]))


@documented(
    "get",
    Op(
        "Get a project's history",
        {"200": body(ref("History"), "The timeline, and the run's state at until")},
        params=(
            query("run_id", {"type": "string", "pattern": f"^{ID_REGEX}$"}, "One run"),
            query(
                "until",
                {"type": "string", "anyOf": [{"pattern": "^[0-9]+$"}, {"format": "date-time"}]},
                "A position (integer) or an ISO 8601 time (UTC if no offset); default: now",
            ),
        ),
    ),
)
async def history(request: Request) -> JSONResponse:
    """The audit timeline and the run's state as it was at `until` (a position or a time)."""
    runtime = runtime_of(request)
    project_id: str = request.path_params["project_id"]
    run_id = checked_id(request.query_params.get("run_id"), "run_id")
    until = parse_until(request.query_params.get("until"))
    project = await project_or_404(runtime, project_id)
    if run_id is not None and (await run_or_404(runtime, run_id))["project_id"] != project_id:
        raise ApiError(404, "unknown_run", f"project {project_id!r} has no run {run_id!r}")
    if isinstance(until, datetime):
        until = await asyncio.to_thread(runtime.read.position_at, until)
    read = runtime.read
    timeline = await asyncio.to_thread(
        lambda: read.timeline(project_id=project_id, run_id=run_id, until=until)
    )
    run_id = run_id or project.get("last_run_id")
    state = await asyncio.to_thread(read.run_state_at, run_id, until) if run_id else None
    return JSONResponse(
        {
            "project_id": project_id,
            "run_id": run_id,
            "until": until,
            "timeline": timeline,
            "status_at": state,
        }
    )


PROJECT = "/api/projects/{project_id:plait_id}"
routes = [
    Route(f"{PROJECT}/parallel/start", start, methods=["POST"]),
    Route(f"{PROJECT}/parallel/status", status, methods=["GET"]),
    Route(f"{PROJECT}/parallel/stop", stop, methods=["POST"]),
    Route(f"{PROJECT}/parallel/resume", resume, methods=["POST"]),
    Route(f"{PROJECT}/history", history, methods=["GET"]),
    Route("/api/runs/{run_id:plait_id}", get_run, methods=["GET"]),
    Route("/api/runs/{run_id:plait_id}/land", land, methods=["POST"]),
    Route("/api/runs/{run_id:plait_id}/tasks/{task_id:plait_id}/retry", retry, methods=["POST"]),
    Route("/api/runs/{run_id:plait_id}/tasks/{task_id:plait_id}/skip", skip, methods=["POST"]),
]
