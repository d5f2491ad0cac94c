"""What a run does next, decided from its state: which tasks are skipped because a task they
depend on did not land, which batches still have work, and the events of a user's retry,
skip or land. Pure: the orchestrator and the service record what these return.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from plait.domain.errors import DomainError
from plait.domain.events import LandRequested, RunEvent, TaskRequeued, TaskSkipped
from plait.domain.run import RunState, TaskState
from plait.domain.statuses import (
    DRIVEN_RUN,
    LANDABLE_RUN,
    NOT_LANDING_TASK,
    RESUMABLE_RUN,
    RETRYABLE_TASK,
    SKIPPABLE_TASK,
    RunStatus,
    TaskStatus,
)

# Why a task that depends on one in this status cannot run: "depends on 'x', which ...".
WHY_NOT_LANDED = {
    TaskStatus.FAILED: "failed",
    TaskStatus.NO_CHANGE: "changed nothing",
    TaskStatus.EJECTED: "broke the tests",
    TaskStatus.KEPT: "could not be merged (a conflict)",
    TaskStatus.SKIPPED: "was skipped",
}
USER_SKIP = "skipped by a user"
LANDED_WITHOUT = "not run: the run was landed without it"


class ActionRefused(DomainError):
    """A retry, skip or land that the run's state does not allow; the message says why."""


def dependency_skips(state: RunState, batch_id: int) -> list[TaskSkipped]:
    """Skip the batch's waiting tasks whose dependency did not land: they would run on a
    tip without the work they build on."""
    return skips_among(state, state.batches[batch_id].task_ids, batch_id)


def skips_among(state: RunState, task_ids: Sequence[str], batch_id: int) -> list[TaskSkipped]:
    """Skip those of `task_ids` that wait and depend on a task that did not land."""
    skips: list[TaskSkipped] = []
    for task_id in task_ids:
        task = state.tasks[task_id]
        if task.status not in (TaskStatus.PENDING, TaskStatus.RERUN):
            continue
        missing = [
            dep
            for dep in task.depends_on
            if dep in state.tasks and state.tasks[dep].status in NOT_LANDING_TASK
        ]
        if missing:
            why = "; ".join(
                f"depends on {dep!r}, which {WHY_NOT_LANDED[state.tasks[dep].status]}"
                for dep in missing
            )
            skips.append(
                TaskSkipped(run_id=state.run_id, task_id=task_id, reason=why, batch_id=batch_id)
            )
    return skips


def retry_events(state: RunState, task_id: str) -> list[TaskRequeued]:
    """Queue the task to run again, and with it every task skipped because of it."""
    task = _task(state, task_id)
    if task.status not in RETRYABLE_TASK:
        raise ActionRefused(
            f"task {task_id!r} is {task.status}: only a task that did not land can be retried"
        )
    queued = [task, *_skipped_dependents(state, task_id)]
    return [
        TaskRequeued(
            run_id=state.run_id,
            batch_id=t.batch_id or 0,
            task_id=t.task_id,
            reason="retried by a user" if t is task else f"its dependency {task_id!r} is retried",
        )
        for t in queued
    ]


def skip_events(state: RunState, task_id: str) -> list[TaskSkipped]:
    """Skip the task; its dependents are skipped when their batch comes."""
    task = _task(state, task_id)
    if task.status not in SKIPPABLE_TASK:
        raise ActionRefused(f"task {task_id!r} is {task.status}: there is nothing to skip")
    return [
        TaskSkipped(run_id=state.run_id, task_id=task_id, reason=USER_SKIP, batch_id=task.batch_id)
    ]


def land_skips(state: RunState) -> list[TaskSkipped]:
    """Landing ends the run: what has not run yet will not."""
    return [
        TaskSkipped(
            run_id=state.run_id, task_id=task.task_id, reason=LANDED_WITHOUT, batch_id=task.batch_id
        )
        for task in state.tasks.values()
        if task.status in (TaskStatus.PENDING, TaskStatus.RERUN)
    ]


def check_landable(state: RunState) -> None:
    if not state.landable:
        if state.result_commit is None or state.result_commit == state.base_commit:
            raise ActionRefused(f"run {state.run_id} has no tested work to land")
        raise ActionRefused(f"run {state.run_id} is {state.status}: there is nothing to land")


def _task(state: RunState, task_id: str) -> TaskState:
    task = state.tasks.get(task_id)
    if task is None:
        known = ", ".join(state.tasks) or "none"
        raise ActionRefused(f"run {state.run_id} has no task {task_id!r} (its tasks: {known})")
    return task


def _skipped_dependents(state: RunState, task_id: str) -> list[TaskState]:
    """Tasks skipped, directly or through others, because `task_id` did not land."""
    found: list[TaskState] = []
    blocked = {task_id}
    for task in state.tasks.values():  # plan order: a dependency comes before its dependents
        if (
            task.status == TaskStatus.SKIPPED
            and task.skip_reason != USER_SKIP
            and blocked.intersection(task.depends_on)
        ):
            found.append(task)
            blocked.add(task.task_id)
    return found


@dataclass(frozen=True)
class Continuation:
    """How a run is continued: what the resume is called, from which statuses, and the
    events recorded right after RunResumed."""

    name: str  # the reason RunResumed records
    allowed: frozenset[RunStatus]
    events: Callable[[RunState], Sequence[RunEvent]]
    needs: str = "only a stopped, failed or interrupted run can continue"
    runs_tasks: bool = True  # False: nothing runs (a landing), so no agent need be installed


RESUME = Continuation(
    "resumed",
    RESUMABLE_RUN | DRIVEN_RUN,
    lambda state: (),
    "only a stopped, failed or interrupted run can be resumed",
)


def _land_events(state: RunState) -> list[RunEvent]:
    check_landable(state)
    return [LandRequested(run_id=state.run_id, reason="plait land")]


LAND = Continuation(
    "to land its tested work",
    LANDABLE_RUN,
    _land_events,
    "only a stopped, failed or kept run has a result to land",
    runs_tasks=False,
)


def retry(task_id: str) -> Continuation:
    """Run a task that did not land again (and the tasks skipped because of it)."""
    return Continuation(
        f"to retry task {task_id!r}", RESUMABLE_RUN | DRIVEN_RUN, lambda s: retry_events(s, task_id)
    )


def skip(task_id: str) -> Continuation:
    """Go on without a task (its dependents are skipped too)."""
    return Continuation(
        f"to skip task {task_id!r}", RESUMABLE_RUN | DRIVEN_RUN, lambda s: skip_events(s, task_id)
    )
