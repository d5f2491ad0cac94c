"""The OpenAPI schemas of a run's details (timeline, logs, diffs, test output, history), and
the small helpers every schema module uses."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from plait.domain.statuses import MEANING, RunStatus, TaskStatus

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


def detail_schemas() -> JSON:
    return {
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
    }
