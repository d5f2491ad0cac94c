"""The OpenAPI 3 document, written by hand to say exactly what each route accepts and answers.

Every operation lists every status it can give: the guard's (401, 403, 413, 421), the
parameter checks' (400, 404), the application's (400, 404, 409, 422) and 503 while the
store is unreachable.
"""

from __future__ import annotations

from enum import StrEnum
from functools import cache
from typing import Any

from plait.domain.agents import runner_names
from plait.domain.events import EVENT_TYPES
from plait.domain.ids import ID_REGEX
from plait.domain.statuses import MEANING, BatchStatus, RunStatus, TaskStatus
from plait.http.params import YAML_TYPES
from plait.projections.logs import DEFAULT_LIMIT, MAX_LIMIT

JSON = dict[str, Any]


def words(kind: type[StrEnum]) -> JSON:
    """A status field: the words of plait.domain.statuses, each with what it means."""
    meanings = "; ".join(f"`{w}`: {MEANING[kind][w]}" for w in kind)
    return {"type": "string", "enum": [str(w) for w in kind], "description": meanings}


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
    422: "A plan refused (`problems` lists every reason), or a body field this request "
    "does not take",
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
            "additionalProperties": False,
            "required": ["path"],
            "properties": {
                "path": {"type": "string", "minLength": 1},
                "name": nullable("string"),
            },
        },
        "ProjectCreated": {
            "type": "object",
            "required": ["project_id", "created"],
            "properties": {
                "project_id": {"type": "string"},
                "created": {"type": "boolean", "description": "false: registered before"},
            },
        },
        "ProjectDeleted": {
            "type": "object",
            "required": ["project_id", "deleted"],
            "properties": {"project_id": {"type": "string"}, "deleted": {"type": "boolean"}},
        },
        "RunSummary": {
            "type": "object",
            "required": ["run_id", "project_id", "status"],
            "properties": {
                "run_id": {"type": "string"},
                "project_id": {"type": "string"},
                "status": words(RunStatus),
                "created_position": {"type": "integer"},
                "repo_path": nullable("string"),
                "base_branch": nullable("string"),
                "started_at": nullable("string"),
                "ended_at": nullable("string"),
                "duration": nullable("number", description="seconds, once it ended"),
                "tasks_total": {"type": "integer"},
                "tasks_landed": {"type": "integer"},
                "landable": {"type": "boolean", "description": "`plait land` would land it"},
                "error": nullable("string"),
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
                "status": {
                    "type": "string",
                    "enum": ["started", "stopping", "resuming", "landing", "retrying", "skipping"],
                },
                "message": {"type": "string"},
                "run_id": {"type": "string"},
            },
        },
        "ResumeRequest": {
            "type": "object",
            "additionalProperties": False,
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
                "status": {**words(RunStatus), "nullable": True},
                "reason": {"type": "string"},
                "repo_path": nullable("string"),
                "base_branch": nullable("string"),
                "result_branch": nullable("string"),
                "result_commit": nullable("string", description="the tested tip of the run"),
                "landed_commit": nullable(
                    "string", description="set only when the base branch moved to the result"
                ),
                "landed_on": nullable("string"),
                "not_landed_reason": {"type": "string"},
                "outcome": {"type": "string", "description": "how the run stands, in one line"},
                "landable_note": {
                    "type": "string",
                    "description": "what `plait land` would land ('' when nothing)",
                },
                "landable": {"type": "boolean"},
                "land_command": nullable("string"),
                "actions": {
                    "type": "array",
                    "items": {"type": "string", "enum": ["stop", "resume", "land"]},
                    "description": "what a user can do with the run now",
                },
                "on_task_failure": {"type": "string", "enum": ["stop", "land"]},
                "has_tests": {"type": "boolean", "description": "the plan has a test command"},
                "started_at": nullable("string"),
                "ended_at": nullable("string"),
                "duration": nullable("number"),
                "error": nullable("string"),
                "tokens_in": {"type": "integer", "description": "agent tokens in, all tasks"},
                "tokens_out": {"type": "integer", "description": "agent tokens out, all tasks"},
                "cost_usd": {"type": "number", "description": "agent cost where reported"},
                "batches": {"type": "array", "items": ref("BatchStatus")},
                "tasks": {"type": "array", "items": ref("TaskStatus")},
            },
        },
        "BatchStatus": {
            "type": "object",
            "required": ["batch_id", "task_ids", "status"],
            "properties": {
                "batch_id": {"type": "integer"},
                "task_ids": {"type": "array", "items": {"type": "string"}},
                "status": words(BatchStatus),
                "culprits": {"type": "array", "items": {"type": "string"}},
                "conflicts": {"type": "array", "items": {"type": "object"}},
                "test_runs": {"type": "array", "items": {"type": "object"}},
            },
        },
        "TaskStatus": {
            "type": "object",
            "required": ["task_id", "status", "attempt", "note"],
            "properties": {
                "task_id": {"type": "string"},
                "status": words(TaskStatus),
                "note": {"type": "string", "description": "why it is in this status"},
                "actions": {
                    "type": "array",
                    "items": {"type": "string", "enum": ["retry", "skip"]},
                    "description": "what a user can do with it now",
                },
                "attempt": {"type": "integer"},
                "attempts": {"type": "array", "items": {"type": "object"}},
                "branch": nullable("string"),
                "commit": nullable("string"),
                "depends_on": {"type": "array", "items": {"type": "string"}},
            },
        },
        "Action": {
            "type": "object",
            "additionalProperties": False,
            "description": "No fields: an empty object, or no body at all.",
        },
        "Span": {
            "type": "object",
            "required": ["kind", "batch_id", "start", "end"],
            "properties": {
                "kind": {
                    "type": "string",
                    "enum": ["batch", "attempt", "resolution", "merge", "test", "land"],
                },
                "batch_id": nullable("integer"),
                "start": nullable("string"),
                "end": nullable("string", description="null: still going on"),
                "task_id": {"type": "string"},
                "attempt": {"type": "integer"},
                "status": {"type": "string"},
                "passed": {"type": "boolean"},
            },
        },
        "Timeline": {
            "type": "object",
            "required": ["run_id", "status", "started_at", "ended_at", "spans"],
            "properties": {
                "run_id": {"type": "string"},
                "status": words(RunStatus),
                "started_at": nullable("string"),
                "ended_at": nullable("string"),
                "spans": {"type": "array", "items": ref("Span")},
            },
        },
        "TaskLog": {
            "type": "object",
            "description": "One slice of one attempt's output. `offset` and `next_offset` are "
            "positions in the log (bytes of its file, or characters of its events when the "
            "file is not on this machine): ask again from `next_offset` for what follows.",
            "required": ["task_id", "attempt", "attempts", "text", "offset", "next_offset"],
            "properties": {
                "task_id": {"type": "string"},
                "attempt": {"type": "integer"},
                "attempts": {"type": "array", "items": {"type": "integer"}},
                "status": words(TaskStatus),
                "resolution": {"type": "boolean"},
                "finished": {"type": "boolean"},
                "text": {"type": "string"},
                "offset": {"type": "integer"},
                "next_offset": {"type": "integer"},
                "size": {"type": "integer"},
                "source": {"type": "string", "enum": ["file", "events"]},
            },
        },
        "TaskDiff": {
            "type": "object",
            "required": ["run_id", "task_id", "base", "head", "files", "patch", "truncated"],
            "properties": {
                "run_id": {"type": "string"},
                "task_id": {"type": "string"},
                "base": {"type": "string", "description": "the commit the attempt started on"},
                "head": nullable("string", description="null: its worktree, not committed"),
                "files": {"type": "array", "items": {"type": "object"}},
                "patch": {"type": "string"},
                "truncated": {"type": "boolean"},
                "source": {"type": "string", "enum": ["commit", "worktree"]},
            },
        },
        "BatchTests": {
            "type": "object",
            "required": ["batch_id", "command", "runs", "culprits", "conflicts"],
            "properties": {
                "batch_id": {"type": "integer"},
                "command": {"type": "string"},
                "runs": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "commit": {"type": "string"},
                            "tested": {"type": "string"},
                            "verdict": {"type": "string", "enum": ["passed", "failed", "flaky"]},
                            "failing_tests": {"type": "array", "items": {"type": "string"}},
                            "output": {"type": "string"},
                        },
                    },
                },
                "culprits": {"type": "array", "items": {"type": "object"}},
                "conflicts": {"type": "array", "items": {"type": "object"}},
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
                "data": {"type": "object", "description": "the event's payload"},
                "summary": {"type": "string", "description": "its essentials in one line"},
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
                "type": {"type": "string", "enum": sorted(EVENT_TYPES)},
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
                {
                    "201": body(ref("ProjectCreated"), "Registered"),
                    "200": body(ref("ProjectCreated"), "This repository's existing project"),
                },
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
            ),
            "delete": operation(
                "Delete a project",
                {"200": body(ref("ProjectDeleted"), "Unregistered (409 while a run is active)")},
                params=[PROJECT_ID],
                write=True,
            ),
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
        "/api/runs": {
            "get": operation(
                "List runs",
                {"200": body({"type": "array", "items": ref("RunSummary")}, "Newest first")},
                params=[
                    query("project_id", ID_SCHEMA, "Only this project's runs"),
                    query(
                        "status",
                        {"type": "string"},
                        "Only runs in these statuses, comma-separated: " + ", ".join(RunStatus),
                    ),
                    query("limit", {"type": "integer", "minimum": 1, "maximum": 1000}, "50"),
                ],
            )
        },
        "/api/runs/{run_id}": {
            "get": operation(
                "Get a run",
                {"200": body(ref("RunStatus"), "The run's status")},
                params=[path_id("run_id")],
            )
        },
        "/api/runs/{run_id}/timeline": {
            "get": operation(
                "Get a run's timeline",
                {"200": body(ref("Timeline"), "Spans for a Gantt chart")},
                params=[path_id("run_id")],
            )
        },
        "/api/runs/{run_id}/tasks/{task_id}/log": {
            "get": operation(
                "Get a task's log",
                {"200": body(ref("TaskLog"), "A slice of one attempt's output")},
                params=[
                    path_id("run_id"),
                    path_id("task_id"),
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
                ],
            )
        },
        "/api/runs/{run_id}/tasks/{task_id}/diff": {
            "get": operation(
                "Get a task's diff",
                {"200": body(ref("TaskDiff"), "Its changes against the commit it started on")},
                params=[
                    path_id("run_id"),
                    path_id("task_id"),
                    query(
                        "attempt",
                        {"type": "integer", "minimum": 1},
                        "Default: the last attempt with a commit",
                    ),
                ],
            )
        },
        "/api/runs/{run_id}/batches/{batch_id}/tests": {
            "get": operation(
                "Get a batch's test output",
                {
                    "200": body(
                        ref("BatchTests"), "Every test run of the batch, culprits, conflicts"
                    )
                },
                params=[
                    path_id("run_id"),
                    {
                        "name": "batch_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "integer", "minimum": 0},
                    },
                ],
            )
        },
        "/api/runs/{run_id}/land": {
            "post": operation(
                "Land a run",
                {"202": body(ref("Accepted"), "Landing its tested work on its base")},
                params=[path_id("run_id")],
                request={
                    "required": False,
                    "content": {"application/json": {"schema": ref("Action")}},
                },
                write=True,
            )
        },
        "/api/runs/{run_id}/tasks/{task_id}/retry": {
            "post": operation(
                "Retry a task",
                {"202": body(ref("Accepted"), "The task runs again; the run continues")},
                params=[path_id("run_id"), path_id("task_id")],
                request={
                    "required": False,
                    "content": {"application/json": {"schema": ref("Action")}},
                },
                write=True,
            )
        },
        "/api/runs/{run_id}/tasks/{task_id}/skip": {
            "post": operation(
                "Skip a task",
                {"202": body(ref("Accepted"), "The run continues without it and its dependents")},
                params=[path_id("run_id"), path_id("task_id")],
                request={
                    "required": False,
                    "content": {"application/json": {"schema": ref("Action")}},
                },
                write=True,
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
