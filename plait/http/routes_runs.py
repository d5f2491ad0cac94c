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

from plait.http.errors import ApiError
from plait.http.params import checked_id, json_object, parse_until
from plait.http.routes_projects import project_or_404
from plait.http.state import Runtime, runtime_of


async def start(request: Request) -> JSONResponse:
    runtime = runtime_of(request)
    run_id = await runtime.plait.start_run(request.path_params["project_id"])
    runtime.metrics.runs_started.inc()
    body = {"status": "started", "message": "Parallel execution initiated", "run_id": run_id}
    return JSONResponse(body, 202)


async def stop(request: Request) -> JSONResponse:
    run_id = await runtime_of(request).plait.stop_run(request.path_params["project_id"])
    return JSONResponse({"status": "stopping", "message": "Stop requested", "run_id": run_id}, 202)


async def land(request: Request) -> JSONResponse:
    await json_object(request, (), required=False)
    run_id = await runtime_of(request).plait.land_run(request.path_params["run_id"])
    return JSONResponse({"status": "landing", "message": "Land requested", "run_id": run_id}, 202)


async def retry(request: Request) -> JSONResponse:
    await json_object(request, (), required=False)
    params = request.path_params
    run_id = await runtime_of(request).plait.retry_task(params["run_id"], params["task_id"])
    message = f"Retry of {params['task_id']} requested"
    return JSONResponse({"status": "retrying", "message": message, "run_id": run_id}, 202)


async def skip(request: Request) -> JSONResponse:
    await json_object(request, (), required=False)
    params = request.path_params
    run_id = await runtime_of(request).plait.skip_task(params["run_id"], params["task_id"])
    message = f"Skip of {params['task_id']} requested"
    return JSONResponse({"status": "skipping", "message": message, "run_id": run_id}, 202)


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


async def get_run(request: Request) -> JSONResponse:
    return JSONResponse(await run_or_404(runtime_of(request), request.path_params["run_id"]))


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
