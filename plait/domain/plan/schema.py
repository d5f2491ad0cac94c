"""The plan's fields, once: each field's name, the JSON Schema of its value, and its limits.

The readers (reading.py, profiles.py) refuse any field not named here and check the same
limits; the HTTP API's OpenAPI document renders these tables as its Plan, Task, Profile and
Batch schemas. Checks a schema cannot express (a dependency cycle, an unknown task id, a
shell task without `run`, blank text) are the readers' alone.

Every field but `tasks` (and a task's `id`, a profile's `agent`) may be absent or null.
"""

from __future__ import annotations

from typing import Any

from plait.domain.ids import ID_PATTERN
from plait.domain.plan.fields import MAX_ITEMS, MAX_NAME, MAX_SECONDS, MAX_TEXT
from plait.domain.plan.model import (
    BUILTIN_AGENTS,
    PROMPT_PLACEHOLDER,
    OnTaskFailure,
    Sandbox,
    Schedule,
)

# Safe as a git branch component and as a directory name: no dots, slashes or leading dash.
TASK_ID_PATTERN = ID_PATTERN
PROFILE_NAME = ID_PATTERN
MAX_CONCURRENCY_LIMIT = 64
MAX_PROFILE_CONCURRENCY = 64
MAX_RETRIES = 100
MAX_BATCH_ID = 1_000_000_000

Schema = dict[str, Any]


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _optional(schema: Schema, description: str | None = None) -> Schema:
    more = {"description": description} if description else {}
    return {**schema, "nullable": True, **more}


def text(max_len: int = MAX_NAME, description: str | None = None) -> Schema:
    return _optional({"type": "string", "minLength": 1, "maxLength": max_len}, description)


def texts(max_len: int = MAX_NAME, description: str | None = None) -> Schema:
    items = {"type": "string", "minLength": 1, "maxLength": max_len}
    return _optional({"type": "array", "maxItems": MAX_ITEMS, "items": items}, description)


def integer(low: int, high: int) -> Schema:
    return _optional({"type": "integer", "minimum": low, "maximum": high})


def seconds() -> Schema:
    return _optional(
        {"type": "number", "minimum": 0, "exclusiveMinimum": True, "maximum": MAX_SECONDS},
        "seconds",
    )


def flag() -> Schema:
    return _optional({"type": "boolean"})


TASK_ID: Schema = {"type": "string", "pattern": f"^{TASK_ID_PATTERN.pattern}$"}
AGENT: Schema = _optional(
    {
        "oneOf": [
            {"type": "string", "enum": list(BUILTIN_AGENTS)},
            {"type": "array", "minItems": 1, "maxItems": MAX_ITEMS, "items": {"type": "string"}},
        ]
    },
    f"{', '.join(BUILTIN_AGENTS)}, or an argv template with {PROMPT_PLACEHOLDER} in one argument",
)

PLAN_SCHEMA: dict[str, Schema] = {
    "tasks": {"type": "array", "minItems": 1, "maxItems": MAX_ITEMS, "items": ref("Task")},
    "base": text(description="the branch to start from and land on (default: HEAD's)"),
    "max_concurrency": integer(1, MAX_CONCURRENCY_LIMIT),
    "retries": integer(0, MAX_RETRIES),
    "timeout": seconds(),
    "test_command": text(MAX_TEXT),
    "test_timeout": seconds(),
    "setup_command": text(MAX_TEXT),
    "test_setup_command": text(MAX_TEXT, "needs a test_command"),
    "copy_ignored": texts(description="relative paths"),
    "keep_ignored": texts(description="relative paths"),
    "setup_inputs": texts(description="relative paths, not inside .git"),
    "junit_report": text(description="a relative path; needs a test_command"),
    "agent": AGENT,
    "allow_red_base": flag(),
    "batches": _optional({"type": "array", "maxItems": MAX_ITEMS, "items": ref("Batch")}),
    "profiles": _optional({"type": "object", "additionalProperties": ref("Profile")}),
    "profile": text(description="a profile of the plan or the user"),
    "allow_no_change": flag(),
    "worktree_root": text(description="an absolute directory"),
    "on_task_failure": _optional({"type": "string", "enum": [str(c) for c in OnTaskFailure]}),
    "sandbox": _optional(
        {"type": "string", "enum": [str(c) for c in Sandbox]},
        "run each task under bubblewrap: only its own directory writable",
    ),
    "sandbox_network": _optional({"type": "boolean"}, "with a sandbox: false cuts the network"),
    "schedule": _optional(
        {"type": "string", "enum": [str(c) for c in Schedule]},
        "batch (the default): batch by batch; ready: a task starts once its dependencies landed",
    ),
}
TASK_SCHEMA: dict[str, Schema] = {
    "id": TASK_ID,
    "title": text(),
    "prompt": text(MAX_TEXT),
    "run": text(MAX_TEXT, "the shell runner's command"),
    "agent": AGENT,
    "depends_on": _optional({"type": "array", "maxItems": MAX_ITEMS, "items": TASK_ID}),
    "files": texts(description="relative paths"),
    "timeout": seconds(),
    "profile": text(description="a profile of the plan or the user"),
    "allow_no_change": flag(),
    "estimate": seconds(),
}
BATCH_SCHEMA: dict[str, Schema] = {
    "batch_id": {"type": "integer", "minimum": 1, "maximum": MAX_BATCH_ID},
    "task_ids": {"type": "array", "maxItems": MAX_ITEMS, "items": {"type": "string"}},
    "can_parallel": flag(),
}
PROFILE_SCHEMA: dict[str, Schema] = {
    "agent": {key: value for key, value in AGENT.items() if key != "nullable"},
    "model": text(),
    "args": texts(MAX_TEXT),
    "env": _optional({"type": "object", "additionalProperties": {"type": "string"}}),
    "drop_env": texts(description="variable names"),
    "pass_env": texts(description="variable names; a trailing _ passes every one it starts"),
    "max_concurrency": integer(1, MAX_PROFILE_CONCURRENCY),
    "program": text(description="the CLI's absolute path"),
}
# Each table's fields that must be given.
REQUIRED: dict[str, tuple[str, ...]] = {
    "Plan": ("tasks",),
    "Task": ("id",),
    "Batch": ("batch_id", "task_ids"),
    "Profile": ("agent",),
}
TABLES: dict[str, dict[str, Schema]] = {
    "Plan": PLAN_SCHEMA,
    "Task": TASK_SCHEMA,
    "Batch": BATCH_SCHEMA,
    "Profile": PROFILE_SCHEMA,
}
