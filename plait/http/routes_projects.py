"""Projects: register one, list them, read one (with its plan and runs), delete one, submit
its plan."""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from plait.http.errors import ApiError
from plait.http.openapi import Op, body, documented, ref
from plait.http.params import YAML_TYPES, json_object, optional_text, plan_body
from plait.http.state import Runtime, runtime_of


async def register_project(request: Request) -> JSONResponse:
    body = await json_object(request, ("path", "name"))
    path = body.get("path")
    if not isinstance(path, str) or not path.strip():
        raise ApiError(400, "bad_request", "'path' (the repository's path) is required")
    name = optional_text(body, "name")
    plait = runtime_of(request).plait
    registered = await plait.register(path, name)
    # 200: this repository is registered already, and that project is the answer.
    return JSONResponse(
        {"project_id": registered.project_id, "created": registered.created},
        201 if registered.created else 200,
        headers={"Location": f"/api/projects/{registered.project_id}"},
    )


async def list_projects(request: Request) -> JSONResponse:
    runtime = runtime_of(request)
    await runtime.plait.wait_until_projected()
    return JSONResponse(await asyncio.to_thread(runtime.read.projects))


async def project_or_404(runtime: Runtime, project_id: str) -> dict[str, Any]:
    await runtime.plait.wait_until_projected()
    project = await asyncio.to_thread(runtime.read.project, project_id)
    if project is None:
        raise ApiError(404, "unknown_project", f"no project {project_id!r}")
    return project


async def get_project(request: Request) -> JSONResponse:
    runtime = runtime_of(request)
    project_id: str = request.path_params["project_id"]
    project = await project_or_404(runtime, project_id)
    project["runs"] = await asyncio.to_thread(runtime.read.runs, project_id)
    return JSONResponse(project)


async def delete_project(request: Request) -> JSONResponse:
    project_id: str = request.path_params["project_id"]
    await runtime_of(request).plait.delete_project(project_id)
    return JSONResponse({"project_id": project_id, "deleted": True})


@documented(
    "get", Op("Get a project", {"200": body(ref("Project"), "The project, its plan and its runs")})
)
@documented(
    "delete",
    Op(
        "Delete a project",
        {"200": body(ref("ProjectDeleted"), "Unregistered (409 while a run is active)")},
    ),
)
async def project(request: Request) -> JSONResponse:
    if request.method == "DELETE":
        return await delete_project(request)
    return await get_project(request)


@documented(
    "put",
    Op(
        "Submit a plan",
        {"200": body(ref("PlanDecision"), "Accepted: its batches and mode")},
        request={
            "required": True,
            "content": {m: {"schema": ref("Plan")} for m in ("application/json", *YAML_TYPES)},
        },
    ),
)
async def put_plan(request: Request) -> JSONResponse:
    project_id: str = request.path_params["project_id"]
    plan = await plan_body(request)
    plait = runtime_of(request).plait
    return JSONResponse(await plait.submit_plan(project_id, plan, source="api"))


@documented(
    "post",
    Op(
        "Register a project",
        {
            "201": body(ref("ProjectCreated"), "Registered"),
            "200": body(ref("ProjectCreated"), "This repository's existing project"),
        },
        request={"required": True, "content": {"application/json": {"schema": ref("NewProject")}}},
    ),
)
@documented(
    "get",
    Op("List projects", {"200": body({"type": "array", "items": ref("Project")}, "Every project")}),
)
async def projects(request: Request) -> JSONResponse:
    # One route per path, so a 405 names every method the path allows.
    if request.method == "POST":
        return await register_project(request)
    return await list_projects(request)


routes = [
    Route("/api/projects", projects, methods=["GET", "POST"]),
    Route("/api/projects/{project_id:plait_id}", project, methods=["GET", "DELETE"]),
    Route("/api/projects/{project_id:plait_id}/plan", put_plan, methods=["PUT"]),
]
