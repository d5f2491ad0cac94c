"""What the dashboard opens on demand: one attempt's log by ranges, and one batch's test runs
with their output, its culprits and why, and its conflicts. Read from the run's events and
the log files they name."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from plait.domain.events import (
    BranchMerged,
    CulpritFound,
    MergeConflicted,
    MergeStarted,
    TestsFailed,
    TestsFlaky,
    TestsPassed,
)
from plait.domain.failures import named_failures
from plait.domain.run import RunState
from plait.eventstore import StoredEvent
from plait.projections.logs import DEFAULT_LIMIT, read_attempt, read_text_log

TEST_TYPES = (TestsPassed.TYPE, TestsFailed.TYPE, TestsFlaky.TYPE)
OUTPUT_TAIL = 64 * 1024  # of each test run's output in a batch's answer


class NotFound(LookupError):
    """No such task, attempt or batch in the run; the message says which."""


def attempt_log(
    events: Callable[[], Sequence[StoredEvent]],
    state: RunState,
    task_id: str,
    attempt: int | None,
    offset: int,
    limit: int = DEFAULT_LIMIT,
    source: str | None = None,
) -> dict[str, Any]:
    task = state.tasks.get(task_id)
    if task is None:
        raise NotFound(f"run {state.run_id} has no task {task_id!r}")
    started = [a for a in task.attempts if a.started_at is not None]
    if not started:
        raise NotFound(f"task {task_id!r} has not started yet")
    chosen = (
        started[-1] if attempt is None else next((a for a in started if a.attempt == attempt), None)
    )
    if chosen is None:
        attempts = ", ".join(str(a.attempt) for a in started)
        raise NotFound(f"task {task_id!r} has no attempt {attempt} (its attempts: {attempts})")
    piece = read_attempt(events, task, chosen, offset, limit, source=source)
    return {
        "task_id": task_id,
        "attempt": chosen.attempt,
        "attempts": [a.attempt for a in started],
        "status": chosen.status,
        "resolution": chosen.resolution,
        "finished": chosen.ended_at is not None,
        "text": piece.text,
        "offset": piece.offset,
        "next_offset": piece.next_offset,
        "size": piece.size,
        "source": piece.source,
    }


def batch_tests(events: Sequence[StoredEvent], state: RunState, batch_id: int) -> dict[str, Any]:
    """Every test run of the batch in order: what was tested (the merged tip, a prefix of
    the merge chain while bisecting), its verdict, its failing tests and its output."""
    if batch_id not in state.batches:
        raise NotFound(f"run {state.run_id} has no batch {batch_id}")
    mine = [e for e in events if e.data.get("batch_id") == batch_id]
    merged: dict[str, str] = {}  # merge commit -> the task whose merge made it
    onto: set[str] = set()
    runs: list[dict[str, Any]] = []
    culprits: list[dict[str, Any]] = []
    conflicts: list[dict[str, Any]] = []
    for stored in mine:
        data = stored.data
        if stored.type == MergeStarted.TYPE:
            onto.add(str(data.get("onto")))
        elif stored.type == BranchMerged.TYPE:
            merged.setdefault(str(data.get("merge_commit")), str(data.get("task_id")))
        elif stored.type == MergeConflicted.TYPE:
            conflicts.append({"task_id": data.get("task_id"), "files": data.get("files", [])})
        elif stored.type == CulpritFound.TYPE:
            tail = str(data.get("output_tail") or "")
            culprits.append(
                {
                    "task_id": data.get("task_id"),
                    "failing_tests": named_failures(data.get("broke_tests") or (), tail),
                    "why": "the tests passed with the branches merged before it and "
                    "failed once it was merged (bisection of the batch's merge chain)",
                }
            )
        elif stored.type in TEST_TYPES:
            run = _test_run(stored, merged, onto)
            if runs and runs[-1]["commit"] == run["commit"]:
                run["tested"] = "the same commit again, to tell a flaky test from a failure"
            runs.append(run)
    command = next((str(e.data.get("command")) for e in mine if e.type in TEST_TYPES), "")
    return {
        "batch_id": batch_id,
        "command": command,
        "runs": runs,
        "culprits": culprits,
        "conflicts": conflicts,
    }


def _test_run(stored: StoredEvent, merged: dict[str, str], onto: set[str]) -> dict[str, Any]:
    data = stored.data
    commit = str(data.get("commit"))
    if commit in merged:
        tested = f"the merge up to and with task {merged[commit]!r}"
    elif commit in onto:
        tested = "the run's tip before this batch"
    else:
        tested = "a merged commit"
    tail = str(data.get("output_tail") or "")
    log = read_text_log(str(data.get("log_path") or ""), tail, 0, None)
    text = log.text[-OUTPUT_TAIL:]
    return {
        "position": stored.position,
        "recorded_at": stored.recorded_text,
        "commit": commit,
        "tested": tested,
        "verdict": {TestsPassed.TYPE: "passed", TestsFailed.TYPE: "failed"}.get(
            stored.type, "flaky"
        ),
        "exit_code": data.get("exit_code"),
        "duration": data.get("duration"),
        "failing_tests": (
            []
            if stored.type == TestsPassed.TYPE
            else named_failures(data.get("failed_tests") or (), tail)
        ),
        "problem": data.get("problem") or "",
        "timed_out": bool(data.get("timed_out")),
        "output": text,
        "output_truncated": len(log.text) > len(text),
        "source": log.source,
    }
