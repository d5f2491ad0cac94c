"""Lifecycle moves of the fold: every move looked up before any is made."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from plait.domain.lifecycles import RUN, TASK
from plait.domain.run.entities import OUTPUT_LINE_LIMIT, TaskState
from plait.domain.run.state import Move, RunState


def transit(*moves: Move) -> None:
    """Look every move up in its shared machine, then make them all: an event applies whole
    or not at all. The machines carry no callbacks, so setting the looked-up status is all
    a transition does (and four times cheaper than running it through transitions)."""
    destinations = [
        lifecycle.next_state(entity.status, trigger, entity_id)
        for lifecycle, entity, trigger, entity_id in moves
    ]
    for (_, entity, _, _), status in zip(moves, destinations, strict=True):
        entity.status = status


def chain(task: TaskState, triggers: Iterable[str]) -> None:
    """Several triggers in a row on one task."""
    status = task.status
    for trigger in triggers:
        status = TASK.next_state(status, trigger, task.task_id)
    task.status = status


def transit_run(state: RunState, trigger: str, *others: Move) -> None:
    """Like `transit`, with the run's own move first (its status is None before creation)."""
    status = RUN.next_state(state.run_status(), trigger, state.run_id)
    transit(*others)
    state.status = status


def last_line(text: str) -> str | None:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:OUTPUT_LINE_LIMIT] if lines else None


def end_attempt(task: TaskState, at: str | None, **facts: Any) -> None:
    attempt = task.current_attempt()
    if attempt is None:
        return
    attempt.status = task.status
    attempt.ended_at = at
    for name, value in facts.items():
        setattr(attempt, name, value)
