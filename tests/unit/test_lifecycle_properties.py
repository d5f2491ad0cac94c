"""Every crash window resumes, at the level of the lifecycles: random outcome sequences
drive each machine from its initial state; wherever one stops (a crash), the domain's step
on resume is defined, the machine allows it, and from there an end state is reachable."""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from plait.domain.errors import InvalidTransition
from plait.domain.lifecycles import BATCH, RUN, TASK, Lifecycle
from plait.domain.run.decide import RESUME_BATCH, RESUME_RUN, RESUME_TASK, Step, check_steps
from plait.domain.statuses import (
    ENDED_RUN,
    IN_FLIGHT_BATCH,
    SETTLED_TASK,
    BatchStatus,
    RunStatus,
    TaskStatus,
)

ENDS: dict[str, frozenset[StrEnum]] = {
    "task": frozenset(SETTLED_TASK),
    "batch": frozenset({BatchStatus.COMPLETED, BatchStatus.FAILED}),
    "run": frozenset(ENDED_RUN),
}


@dataclass
class Entity:
    status: Any


def reaches_an_end(lifecycle: Lifecycle[Any], state: str) -> bool:
    """Breadth-first over the machine's own transitions."""
    table = lifecycle.transitions_table()
    seen, queue = {state}, deque([state])
    while queue:
        here = queue.popleft()
        if lifecycle.kind(here) in ENDS[lifecycle.entity]:
            return True
        for _, source, dest in table:
            if source == here and dest not in seen:
                seen.add(dest)
                queue.append(dest)
    return False


def after_resume(lifecycle: Lifecycle[Any], state: StrEnum) -> StrEnum:
    """Where the domain's step on resume takes an entity a crash left in `state`."""
    steps: dict[str, Mapping[Any, Step]] = {
        "task": RESUME_TASK,
        "batch": RESUME_BATCH,
        "run": RESUME_RUN,
    }
    step = steps[lifecycle.entity][state]
    if step in (Step.RUN, Step.LEAVE, Step.END, Step.CARRY):
        return state
    if lifecycle is BATCH and state in IN_FLIGHT_BATCH:
        state = BATCH.next_state(state, "cancel")  # RunResumed cancels it first
    trigger = "resume" if step is Step.LAND else str(step.value)
    resumed: StrEnum = lifecycle.next_state(state, trigger)
    return resumed


@settings(max_examples=300, deadline=None)
@given(
    lifecycle=st.sampled_from([RUN, BATCH, TASK]),
    choices=st.lists(st.integers(min_value=0, max_value=1000), max_size=40),
)
def test_wherever_a_crash_stops_a_lifecycle_its_resume_step_leads_to_an_end(
    lifecycle: Lifecycle[Any], choices: list[int]
) -> None:
    entity = Entity(lifecycle.initial)
    for choice in choices:
        assert reaches_an_end(lifecycle, str(entity.status)), entity.status
        resumed = after_resume(lifecycle, entity.status)  # a crash here: the step is legal
        assert reaches_an_end(lifecycle, str(resumed)), (entity.status, resumed)
        allowed = [t for t in lifecycle.triggers if lifecycle.can(entity.status, t)]
        if not allowed:
            break
        lifecycle.fire(entity, allowed[choice % len(allowed)])  # an outcome execution reports
    assert entity.status in lifecycle.states


def test_every_state_of_every_lifecycle_has_a_step_on_resume() -> None:
    assert set(RESUME_TASK) == set(TaskStatus)
    assert set(RESUME_BATCH) == set(BatchStatus)
    assert set(RESUME_RUN) == set(RunStatus)


def test_a_batch_a_crash_left_landed_starts_again_to_complete() -> None:
    assert RESUME_BATCH[BatchStatus.LANDED] is Step.START
    restarted = after_resume(BATCH, BatchStatus.LANDED)
    assert restarted == BatchStatus.RUNNING
    assert reaches_an_end(BATCH, str(restarted))


def test_a_task_a_crash_left_running_is_interrupted_and_runs_again() -> None:
    assert after_resume(TASK, TaskStatus.RUNNING) == TaskStatus.PENDING
    assert after_resume(TASK, TaskStatus.RESOLVING) == TaskStatus.PENDING
    assert after_resume(TASK, TaskStatus.CONFLICTED) == TaskStatus.RERUN


def test_a_step_on_resume_the_machine_does_not_allow_is_refused() -> None:
    wrong = {**RESUME_TASK, TaskStatus.RUNNING: Step.REQUEUE}  # requeue a running task?
    with pytest.raises(InvalidTransition, match="running"):
        check_steps(TASK, wrong)
    incomplete = {k: v for k, v in RESUME_BATCH.items() if k != BatchStatus.LANDED}
    with pytest.raises(RuntimeError, match="no step on resume for \\['landed'\\]"):
        check_steps(BATCH, incomplete)
