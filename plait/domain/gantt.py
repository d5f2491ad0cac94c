"""A run's timeline as spans, for a Gantt chart: each task attempt (and conflict resolution)
by batch, each batch's merge, each test run, each landing. Derived from the folded state
alone; a span still open has no `end`.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from plait.domain.run import RunState
from plait.domain.statuses import RunStatus
from plait.domain.times import parse_time

Span = dict[str, Any]


def spans(state: RunState) -> list[Span]:
    found: list[Span] = []
    if state.baseline_ended_at:
        found.append(
            _span("test", None, _before(state.baseline_ended_at, state.baseline_duration),
                  state.baseline_ended_at, label="tests on the base",
                  passed=state.baseline_passed)
        )  # fmt: skip
    for batch_id in sorted(state.batches):
        batch = state.batches[batch_id]
        if batch.started_at is None:
            continue
        found.append(
            _span("batch", batch_id, batch.started_at, batch.ended_at, status=batch.status)
        )
        for task_id in batch.task_ids:
            task = state.tasks.get(task_id)
            for attempt in task.attempts if task else ():
                if attempt.started_at is None:
                    continue
                found.append(
                    _span(
                        "resolution" if attempt.resolution else "attempt", batch_id,
                        attempt.started_at, attempt.ended_at, task_id=task_id,
                        attempt=attempt.attempt, status=attempt.status,
                    )
                )  # fmt: skip
        if batch.merge_started_at:
            first_test = batch.test_runs[0] if batch.test_runs else None
            merged_by = (
                _before(first_test.ended_at, first_test.duration) if first_test else None
            ) or batch.landed_at
            found.append(_span("merge", batch_id, batch.merge_started_at, merged_by))
        for run in batch.test_runs:
            found.append(
                _span("test", batch_id, _before(run.ended_at, run.duration), run.ended_at,
                      commit=run.commit, passed=run.passed, flaky=run.flaky,
                      failing_tests=run.failing_tests)
            )  # fmt: skip
        if batch.landed_at:
            found.append(_span("land", batch_id, batch.landed_at, batch.landed_at))
    if state.status in (RunStatus.LANDED, RunStatus.KEPT) and state.ended_at:
        last = max(
            (b.ended_at for b in state.batches.values() if b.ended_at), default=state.ended_at
        )
        found.append(
            _span("land", None, last, state.ended_at, label=f"land on {state.base_branch}",
                  status=state.status)
        )  # fmt: skip
    return found


def _span(kind: str, batch_id: int | None, start: str | None, end: str | None, **more: Any) -> Span:
    return {"kind": kind, "batch_id": batch_id, "start": start, "end": end, **more}


def _before(end: str | None, seconds: float | None) -> str | None:
    moment = parse_time(end)
    if moment is None:
        return None
    return (moment - timedelta(seconds=seconds or 0.0)).isoformat().replace("+00:00", "Z")
