"""The OpenAPI 3 document, written by hand to say exactly what each route accepts and answers.

Every operation lists every status it can give: the guard's (401, 403, 413, 421), the
parameter checks' (400, 404), the application's (400, 404, 409, 422) and 503 while the
store is unreachable.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from plait.domain.agents import runner_names
from plait.http.params import ID_REGEX, YAML_TYPES

JSON = dict[str, Any]


def ref(name: str) -> JSON:
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(kind: str, **more: Any) -> JSON:
    return {"type": kind, "nullable": True, **more}


def body(schema: JSON, description: str, media: str = "application/json") -> JSON:
    return {"description": description, "content": {media: {"schema": schema}}}


ERROR_TEXT = {
    400: "Invalid input",
    401: "Missing or wrong bearer token",
    403: "Cross-site request",
    404: "No such project or run, or an invalid id",
    409: "Conflicts with the project's current state",
    413: "Request body too large",
    415: "Unsupported content type",
    421: "Host header not served here (DNS rebinding guard)",
    422: "Plan refused; `problems` lists every reason",
    503: "Starting, stopping, or the event store is unreachable",
}
STATUS_REQUIRED = [
    "execution_mode",
    "parallel_started_at",
    "batches_total",
    "current_batch",
    "completed_batches",
    "run_id",
    "status",
    "batches",
    "tasks",
]
READ_ERRORS = (400, 404, 421, 503)
WRITE_ERRORS = (400, 401, 403, 404, 409, 413, 415, 421, 422, 503)


def errors(codes: tuple[int, ...]) -> JSON:
    return {str(code): body(ref("Error"), ERROR_TEXT[code]) for code in codes}


def operation(
    summary: str,
    ok: dict[str, JSON],
    *,
    params: list[JSON] | None = None,
    request: JSON | None = None,
    write: bool = False,
) -> JSON:
    op: JSON = {
        "summary": summary,
        "operationId": summary.lower().replace(" ", "_").replace("'", ""),
        "parameters": params or [],
        "responses": {**ok, **errors(WRITE_ERRORS if write else READ_ERRORS)},
        "security": [{"bearer": []}] if write else [],
    }
    if request is not None:
        op["requestBody"] = request
    return op


def path_id(name: str) -> JSON:
    schema = {"type": "string", "pattern": f"^{ID_REGEX}$"}
    return {"name": name, "in": "path", "required": True, "schema": schema}


def query(name: str, schema: JSON, description: str) -> JSON:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }


PROJECT_ID = path_id("project_id")
ID_SCHEMA: JSON = {"type": "string", "pattern": f"^{ID_REGEX}$"}
AGENT_SCHEMA: JSON = {
    "description": f"{', '.join(runner_names())}, or an argv template containing {{prompt}}",
    "nullable": True,
    "oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}],
}
RESUME_FROM = [
    {
        "name": "Last-Event-ID",
        "in": "header",
        "required": False,
        "schema": {"type": "string", "pattern": "^[0-9]+$"},
        "description": "Resume after this position (sent by EventSource on reconnect).",
    },
    query("after", {"type": "string", "pattern": "^[0-9]+$"}, "Resume after this position."),
]
EVENT_STREAM = {
    "200": body(
        {"type": "string"},
        "Server-sent events: `id:` position, `event:` type, `data:` an Event as JSON; "
        "`: ping` heartbeats.",
        "text/event-stream",
    )
}


def schemas() -> JSON:
    batch = {
        "type": "object",
        "required": ["batch_id", "task_ids", "can_parallel"],
        "properties": {
            "batch_id": {"type": "integer"},
            "task_ids": {"type": "array", "items": {"type": "string"}},
            "can_parallel": {"type": "boolean"},
        },
    }
    return {
        "Error": {
            "type": "object",
            "required": ["error"],
            "properties": {
                "error": {
                    "type": "object",
                    "required": ["code", "message"],
                    "properties": {
                        "code": {"type": "string"},
                        "message": {"type": "string"},
                        "problems": {"type": "array", "items": {"type": "string"}},
                        "run_id": {"type": "string"},
                    },
                }
            },
        },
        "NewProject": {
            "type": "object",
            "required": ["path"],
            "properties": {
                "path": {"type": "string", "minLength": 1},
                "name": nullable("string"),
            },
        },
        "ProjectCreated": {
            "type": "object",
            "required": ["project_id"],
            "properties": {"project_id": {"type": "string"}},
        },
        "RunSummary": {
            "type": "object",
            "required": ["run_id", "project_id", "status"],
            "properties": {
                "run_id": {"type": "string"},
                "project_id": {"type": "string"},
                "status": {"type": "string"},
                "created_position": {"type": "integer"},
            },
        },
        "Project": {
            "type": "object",
            "required": ["project_id", "name", "repo_path", "plan"],
            "properties": {
                "project_id": {"type": "string"},
                "name": {"type": "string"},
                "repo_path": {"type": "string"},
                "registered_at": {"type": "string"},
                "plan": nullable("object", description="The accepted plan, its batches, mode"),
                "active_run_id": nullable("string"),
                "last_run_id": nullable("string"),
                "position": {"type": "integer"},
                "runs": {"type": "array", "items": ref("RunSummary")},
            },
        },
        "Task": {
            "type": "object",
            "additionalProperties": False,
            "required": ["id"],
            "properties": {
                "id": ID_SCHEMA,
                "title": nullable("string"),
                "prompt": nullable("string"),
                "run": nullable("string", description="the shell runner's command"),
                "agent": AGENT_SCHEMA,
                "depends_on": nullable("array", items=ID_SCHEMA),
                "files": nullable("array", items={"type": "string"}),
                "timeout": nullable("number", exclusiveMinimum=True, minimum=0),
                "profile": nullable("string", description="a profile of the plan or the user"),
                "allow_no_change": nullable("boolean"),
            },
        },
        "Profile": {
            "type": "object",
            "description": "A named way to run an agent (docs/plan-format.md, Profiles).",
            "additionalProperties": False,
            "required": ["agent"],
            "properties": {
                "agent": AGENT_SCHEMA,
                "model": nullable("string"),
                "args": nullable("array", items={"type": "string"}),
                "env": nullable("object", additionalProperties={"type": "string"}),
                "drop_env": nullable("array", items={"type": "string"}),
                "pass_env": nullable("array", items={"type": "string"}),
                "max_concurrency": nullable("integer", minimum=1, maximum=64),
                "program": nullable("string", description="the CLI's absolute path"),
            },
        },
        "Plan": {
            "type": "object",
            "description": "A plan (see docs/plan-format.md). Checks a schema cannot express "
            "(dependency cycles, unknown ids, a shell task without `run`, ...) answer 422.",
            "additionalProperties": False,
            "required": ["tasks"],
            "properties": {
                "tasks": {"type": "array", "minItems": 1, "items": ref("Task")},
                "base": nullable("string"),
                "max_concurrency": nullable("integer", minimum=1, maximum=64),
                "retries": nullable("integer", minimum=0, maximum=100),
                "timeout": nullable("number", exclusiveMinimum=True, minimum=0),
                "test_command": nullable("string"),
                "test_timeout": nullable("number", exclusiveMinimum=True, minimum=0),
                "setup_command": nullable("string"),
                "test_setup_command": nullable("string"),
                "copy_ignored": nullable("array", items={"type": "string"}),
                "keep_ignored": nullable("array", items={"type": "string"}),
                "setup_inputs": nullable("array", items={"type": "string"}),
                "junit_report": nullable("string"),
                "agent": AGENT_SCHEMA,
                "allow_red_base": nullable("boolean"),
                "batches": nullable("array", items=ref("Batch")),
                "profiles": nullable("object", additionalProperties=ref("Profile")),
                "profile": nullable("string"),
                "allow_no_change": nullable("boolean"),
                "worktree_root": nullable("string", description="an absolute directory"),
            },
        },
        "Batch": batch,
        "PlanDecision": {
            "type": "object",
            "required": ["mode", "reason", "batches"],
            "properties": {
                "mode": {"type": "string", "enum": ["parallel", "sequential"]},
                "reason": {"type": "string"},
                "batches": {"type": "array", "items": ref("Batch")},
            },
        },
        "Accepted": {
            "type": "object",
            "required": ["status", "message", "run_id"],
            "properties": {
                "status": {"type": "string", "enum": ["started", "stopping", "resuming"]},
                "message": {"type": "string"},
                "run_id": {"type": "string"},
            },
        },
        "ResumeRequest": {
            "type": "object",
            "properties": {"run_id": nullable("string", pattern=f"^{ID_REGEX}$")},
        },
        "RunStatus": {
            "type": "object",
            "required": STATUS_REQUIRED,
            "properties": {
                "execution_mode": {"type": "string"},
                "parallel_started_at": nullable("string"),
                "batches_total": {"type": "integer"},
                "current_batch": nullable("integer"),
                "completed_batches": {"type": "integer"},
                "run_id": nullable("string"),
                "project_id": {"type": "string"},
                "status": nullable("string"),
                "reason": {"type": "string"},
                "landed_commit": nullable("string"),
                "error": nullable("string"),
                "tokens_in": {"type": "integer", "description": "agent tokens in, all tasks"},
                "tokens_out": {"type": "integer", "description": "agent tokens out, all tasks"},
                "cost_usd": {"type": "number", "description": "agent cost where reported"},
                "batches": {"type": "array", "items": {"type": "object"}},
                "tasks": {"type": "array", "items": {"type": "object"}},
            },
        },
        "TimelineEntry": {
            "type": "object",
            "required": ["position", "type", "recorded_at"],
            "properties": {
                "position": {"type": "integer"},
                "project_id": nullable("string"),
                "run_id": nullable("string"),
                "type": {"type": "string"},
                "recorded_at": {"type": "string"},
            },
        },
        "History": {
            "type": "object",
            "required": ["project_id", "run_id", "until", "timeline", "status_at"],
            "properties": {
                "project_id": {"type": "string"},
                "run_id": nullable("string"),
                "until": nullable("integer"),
                "timeline": {"type": "array", "items": ref("TimelineEntry")},
                "status_at": nullable("object", description="A RunStatus as it was at until"),
            },
        },
        "Event": {
            "type": "object",
            "description": "The data of one server-sent event.",
            "required": ["position", "type", "stream_id", "recorded_at", "data"],
            "properties": {
                "position": {"type": "integer"},
                "type": {"type": "string"},
                "stream_id": {"type": "string"},
                "recorded_at": {"type": "string"},
                "run_id": nullable("string"),
                "batch_id": nullable("integer"),
                "task_id": nullable("string"),
                "worktree_id": nullable("string"),
                "attempt": nullable("integer"),
                "data": {"type": "object"},
            },
        },
        "Health": {
            "type": "object",
            "required": ["status", "position", "projected"],
            "properties": {
                "status": {"type": "string", "enum": ["ok"]},
                "position": {"type": "integer"},
                "projected": {"type": "integer"},
            },
        },
    }


def paths() -> JSON:
    project = "/api/projects/{project_id}"
    plan_media = {media: {"schema": ref("Plan")} for media in ("application/json", *YAML_TYPES)}
    return {
        "/api/projects": {
            "post": operation(
                "Register a project",
                {"201": body(ref("ProjectCreated"), "Registered")},
                request={
                    "required": True,
                    "content": {"application/json": {"schema": ref("NewProject")}},
                },
                write=True,
            ),
            "get": operation(
                "List projects",
                {"200": body({"type": "array", "items": ref("Project")}, "Every project")},
            ),
        },
        project: {
            "get": operation(
                "Get a project",
                {"200": body(ref("Project"), "The project, its plan and its runs")},
                params=[PROJECT_ID],
            )
        },
        f"{project}/plan": {
            "put": operation(
                "Submit a plan",
                {"200": body(ref("PlanDecision"), "Accepted: its batches and mode")},
                params=[PROJECT_ID],
                request={"required": True, "content": plan_media},
                write=True,
            )
        },
        f"{project}/parallel/start": {
            "post": operation(
                "Start a run",
                {"202": body(ref("Accepted"), "Parallel execution initiated")},
                params=[PROJECT_ID],
                write=True,
            )
        },
        f"{project}/parallel/status": {
            "get": operation(
                "Get the run status",
                {"200": body(ref("RunStatus"), "The active run's status, else the last run's")},
                params=[PROJECT_ID],
            )
        },
        f"{project}/parallel/stop": {
            "post": operation(
                "Stop the run",
                {"202": body(ref("Accepted"), "Stop requested")},
                params=[PROJECT_ID],
                write=True,
            )
        },
        f"{project}/parallel/resume": {
            "post": operation(
                "Resume a run",
                {"202": body(ref("Accepted"), "Resume requested")},
                params=[PROJECT_ID],
                request={
                    "required": False,
                    "content": {"application/json": {"schema": ref("ResumeRequest")}},
                },
                write=True,
            )
        },
        f"{project}/history": {
            "get": operation(
                "Get a project's history",
                {"200": body(ref("History"), "The timeline, and the run's state at until")},
                params=[
                    PROJECT_ID,
                    query("run_id", {"type": "string", "pattern": f"^{ID_REGEX}$"}, "One run"),
                    query(
                        "until",
                        {
                            "type": "string",
                            "anyOf": [{"pattern": "^[0-9]+$"}, {"format": "date-time"}],
                        },
                        "A position (integer) or an ISO 8601 time (UTC if no offset); default: now",
                    ),
                ],
            )
        },
        f"{project}/events": {
            "get": operation(
                "Follow a project's events", EVENT_STREAM, params=[PROJECT_ID, *RESUME_FROM]
            )
        },
        "/api/events": {"get": operation("Follow every event", EVENT_STREAM, params=RESUME_FROM)},
        "/api/runs/{run_id}": {
            "get": operation(
                "Get a run",
                {"200": body(ref("RunStatus"), "The run's status")},
                params=[path_id("run_id")],
            )
        },
        "/healthz": {"get": operation("Check health", {"200": body(ref("Health"), "Serving")})},
        "/metrics": {
            "get": operation(
                "Get metrics",
                {"200": body({"type": "string"}, "Prometheus text format", "text/plain")},
            )
        },
        "/openapi.json": {
            "get": operation("Get this document", {"200": body({"type": "object"}, "OpenAPI")})
        },
        "/": {
            "get": operation(
                "Open the dashboard", {"200": body({"type": "string"}, "The page", "text/html")}
            )
        },
    }


@cache
def openapi_document() -> JSON:
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "plait",
            "version": "1",
            "description": "Run a plan of coding tasks in parallel git worktrees. "
            "State-changing requests need `Authorization: Bearer <token>`.",
        },
        "paths": paths(),
        "components": {
            "schemas": schemas(),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
