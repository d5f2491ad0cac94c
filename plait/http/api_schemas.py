"""The components of the OpenAPI document: the shapes the API answers, and the plan's schemas
rendered from the domain's field tables (plait.domain.plan.schema).
"""

from __future__ import annotations

from plait.domain.events import EVENT_TYPES
from plait.domain.ids import ID_REGEX
from plait.domain.plan.model import Schedule
from plait.domain.plan.schema import REQUIRED, TABLES
from plait.domain.statuses import BatchStatus, RunStatus, TaskStatus
from plait.http.api_details import JSON, detail_schemas, nullable, ref, words

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


def schemas() -> JSON:
    return {
        **plan_schemas(),
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
                "schedule": {"type": "string", "enum": [str(c) for c in Schedule]},
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
        **detail_schemas(),
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


def plan_schemas() -> JSON:
    """Plan, Task, Batch and Profile: the domain's tables, as objects that take nothing else."""
    described = {
        "Plan": "A plan (docs/plan-format.md). Checks a schema cannot express (dependency "
        "cycles, unknown ids, a shell task without `run`, ...) answer 422.",
        "Profile": "A named way to run an agent (docs/plan-format.md, Profiles).",
    }
    return {
        name: {
            "type": "object",
            "additionalProperties": False,
            "required": list(REQUIRED[name]),
            "properties": dict(table),
            **({"description": described[name]} if name in described else {}),
        }
        for name, table in TABLES.items()
    }
