"""Snapshot helpers: dataclass fields from JSON, and the translation of version 1 snapshots."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

from plait.domain.run.entities import AttemptState
from plait.domain.statuses import (
    TaskStatus,
)


def restore_attempt(raw: Mapping[str, Any]) -> AttemptState:
    attempt = AttemptState(**known(AttemptState, raw))
    attempt.status = TaskStatus(attempt.status)
    return attempt


# Version 1 snapshots said requested/created for waiting, merged for merged, removed for
# landed, completed for any finished run, and kept the last landing as landed_commit.
_V1_TASK = {"requested": "pending", "created": "pending", "removed": "landed"}


def upcast_v1(data: Mapping[str, Any]) -> dict[str, Any]:
    run = dict(data)
    landed_batches = {
        int(b["batch_id"])
        for b in run.get("batches", ())
        if b.get("landed_after") and b.get("status") not in ("running", "merging", "testing")
    }
    tasks = []
    for raw in run.get("tasks", ()):
        task = dict(raw)
        status = str(task.get("status"))
        if status == "merged":
            status = "landed" if task.get("batch_id") in landed_batches else "succeeded"
        task["status"] = _V1_TASK.get(status, status)
        tasks.append(task)
    run["tasks"] = tasks
    run["result_commit"] = run.get("landed_commit")
    if run.get("status") == "created":
        run["status"] = "pending"
    elif run.get("status") == "completed":
        kept = run.get("landed_on") != run.get("base_branch")
        nothing = run.get("landed_commit") == run.get("base_commit")
        run["status"] = "kept" if kept else "succeeded" if nothing else "landed"
    if run.get("status") != "landed":
        run["landed_commit"] = None
        run["landed_on"] = None if run.get("status") != "succeeded" else run.get("landed_on")
    return run


def known(cls: type[Any], data: Mapping[str, Any], exclude: Iterable[str] = ()) -> dict[str, Any]:
    names = {spec.name for spec in dataclasses.fields(cls)} - set(exclude)
    return {key: value for key, value in data.items() if key in names}
