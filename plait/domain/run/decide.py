"""The domain decides: given a run's state and an outcome execution reports (a process died
with the run unfinished, a batch runs again, its tasks ended, a merge chain ran, the
result's landing was tried), the events to record.

Execution performs the effects (processes, worktrees, merges) and reports what happened;
which event follows is chosen here, in one place. Every state of every lifecycle has a
defined next step on resume (RESUME_TASK, RESUME_BATCH, RESUME_RUN), and each step's
trigger is checked against the lifecycle's machine when this module is imported: a step
the machine does not allow is a bug found at once, not a run that no resume can finish.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from plait.domain.describe import gist
from plait.domain.events import (
    BatchCompleted,
    BatchFailed,
    BranchMerged,
    MergeConflicted,
    RunCompleted,
    RunEvent,
    RunResumed,
    RunStopped,
    StopRequested,
    TaskInterrupted,
    TaskRequeued,
)
from plait.domain.lifecycles import BATCH, RUN, TASK, Lifecycle
from plait.domain.run.entities import land_command
from plait.domain.run.state import RunState
from plait.domain.statuses import (
    IN_FLIGHT_BATCH,
    NOT_LANDING_TASK,
    TASK_FAILURE,
    BatchStatus,
    RunStatus,
    TaskStatus,
)


class Step(enum.Enum):
    """What resuming does with an entity in a given state; the value is the lifecycle
    trigger that step fires first (None: no event)."""

    RUN = None  # a task waiting for its attempt (`provision` follows)
    CARRY = "merge"  # a finished task: carried to its batch's merge as it is
    REQUEUE = "requeue"  # a task that did not land this time: queued to run again
    INTERRUPT = "interrupt"  # a task whose process died with the driver
    LEAVE = "leave"  # settled for this run (landed, left out, skipped): nothing to do
    START = "start"  # a batch or run (re)started
    RESUME = "resume"  # a run continued by RunResumed
    STOP = "stop"  # a run whose stop was asked for: the stop is finished
    LAND = "land"  # a kept run: `plait land` lands it
    END = "end"  # a run that ended: nothing follows on its own


T, B, R = TaskStatus, BatchStatus, RunStatus

RESUME_TASK: Mapping[TaskStatus, Step] = {
    T.PENDING: Step.RUN,
    T.RERUN: Step.RUN,
    T.RUNNING: Step.INTERRUPT,
    T.RESOLVING: Step.INTERRUPT,
    T.SUCCEEDED: Step.CARRY,
    T.NO_CHANGE: Step.REQUEUE,
    T.FAILED: Step.REQUEUE,
    T.CONFLICTED: Step.REQUEUE,
    T.LANDED: Step.LEAVE,
    T.EJECTED: Step.LEAVE,
    T.KEPT: Step.LEAVE,
    T.SKIPPED: Step.LEAVE,
}
# A resumed run restarts every batch that is not completed: a landed one to record its
# cleanup and completion, an in-flight one after RunResumed cancelled it. A completed
# batch runs again only for a task a user queued again.
RESUME_BATCH: Mapping[BatchStatus, Step] = {
    B.PENDING: Step.START,
    B.RUNNING: Step.START,
    B.MERGING: Step.START,
    B.TESTING: Step.START,
    B.LANDED: Step.START,
    B.CANCELLED: Step.START,
    B.FAILED: Step.START,
    B.COMPLETED: Step.LEAVE,
}
RESUME_RUN: Mapping[RunStatus, Step] = {
    R.PENDING: Step.START,
    R.RUNNING: Step.RESUME,
    R.STOPPING: Step.STOP,
    R.STOPPED: Step.RESUME,
    R.FAILED: Step.RESUME,
    R.KEPT: Step.LAND,
    R.LANDED: Step.END,
    R.SUCCEEDED: Step.END,
}


def check_steps(lifecycle: Lifecycle[Any], table: Mapping[Any, Step]) -> None:
    """Every state has a step, and the machine allows the step's trigger from it."""
    missing = set(lifecycle.states) - set(table)
    if missing:
        raise RuntimeError(f"{lifecycle.entity}: no step on resume for {sorted(map(str, missing))}")
    for state, step in table.items():
        trigger = step.value
        if trigger in (None, "leave", "end"):
            continue
        if step is Step.LAND:
            trigger = "resume"  # `plait land` resumes the run to land its result
        source = state
        if lifecycle is BATCH and state in IN_FLIGHT_BATCH:
            source = BATCH.next_state(state, "cancel")  # RunResumed cancelled it first
        lifecycle.next_state(source, trigger)


check_steps(TASK, RESUME_TASK)
check_steps(BATCH, RESUME_BATCH)
check_steps(RUN, RESUME_RUN)


# --- a process died: what recovery records --------------------------------------------


def interruptions(state: RunState, reason: str) -> list[TaskInterrupted]:
    """Every task whose process died with its driver (or was stopped) is interrupted."""
    return [
        TaskInterrupted(
            run_id=state.run_id,
            batch_id=task.batch_id or 0,
            task_id=task.task_id,
            worktree_id=task.worktree_id,
            attempt=task.attempt or 1,
            reason=reason,
        )
        for task in state.tasks.values()
        if RESUME_TASK[task.status] is Step.INTERRUPT and task.worktree_id
    ]


def orphan_stop(state: RunState, reason: str) -> list[RunEvent]:
    """Stop a run nobody drives: the stop asked for, its tasks interrupted, the run stopped."""
    events: list[RunEvent] = []
    if state.status in (R.RUNNING, R.PENDING):
        events.append(StopRequested(run_id=state.run_id, reason=reason))
    events += interruptions(state, "the process driving the run ended")
    events.append(RunStopped(run_id=state.run_id, reason=reason))
    return events


@dataclass(frozen=True)
class Recovery:
    """What start-up does with an unfinished run it took over: the events, then whether
    the run is driven on (`launch`) or ended stopped."""

    events: list[RunEvent]
    launch: bool


def recovery(state: RunState) -> Recovery:
    """A crash found on recovery: the dead driver's run goes on from where its history
    ends, or (a stop was asked for) its stop is finished."""
    step = RESUME_RUN[state.status or R.PENDING]
    if step is Step.STOP:
        return Recovery(orphan_stop(state, state.stop_reason or "stop requested"), launch=False)
    if step is Step.RESUME and state.status == R.RUNNING:
        events: list[RunEvent] = [*interruptions(state, "the process driving the run ended")]
        events.append(RunResumed(run_id=state.run_id, reason="recovered after a crash"))
        return Recovery(events, launch=True)
    return Recovery([], launch=step is Step.START)


# --- a batch runs (again) ---------------------------------------------------------------


def batch_has_work(state: RunState, batch_id: int) -> bool:
    """A completed batch is done unless one of its tasks was queued again (a retry); any
    other batch runs (again), even if only to record that it is done."""
    batch = state.batches[batch_id]
    if RESUME_BATCH[batch.status] is Step.START:
        return True
    return any(state.tasks[t].status == T.PENDING for t in batch.task_ids)


@dataclass
class BatchResume:
    """Which of a batch's tasks run, which are carried to the merge as they are, and the
    requeues to record first."""

    to_run: list[str] = field(default_factory=list)
    carried: list[str] = field(default_factory=list)
    requeued: list[TaskRequeued] = field(default_factory=list)


def resume_batch(state: RunState, batch_id: int) -> BatchResume:
    """On a resumed run, a task whose branch is finished is carried to the merge, one that
    failed, conflicted or changed nothing is queued to run again, a settled one is left."""
    plan = BatchResume()
    for task_id in state.batches[batch_id].task_ids:
        task = state.tasks[task_id]
        step = RESUME_TASK[task.status]
        if step is Step.LEAVE:
            continue
        if step is Step.CARRY and task.worktree_id:
            plan.carried.append(task_id)
            continue
        if step is Step.REQUEUE:
            plan.requeued.append(
                TaskRequeued(
                    run_id=state.run_id,
                    batch_id=batch_id,
                    task_id=task_id,
                    reason="the run was resumed",
                )
            )
        plan.to_run.append(task_id)
    return plan


# --- a batch's tasks ended: its end ------------------------------------------------------


def batch_end(
    state: RunState,
    batch_id: int,
    left_out: Mapping[str, str],
    unprepared: Sequence[str],
    duration: float,
) -> BatchFailed | BatchCompleted:
    """The batch's end, once its green work landed. A task that never got a worktree (a
    full disk, a git failure) did not run: that fails the batch, resumable, never a task
    quietly left out of a finished run. Under `on_task_failure: stop` a task's own failure
    does too. Conflicts and culprits leave the batch completed without them."""
    stops = state.on_task_failure == "stop"
    failed = [
        task_id
        for task_id in left_out
        if (stops and state.tasks[task_id].status in TASK_FAILURE) or task_id in unprepared
    ]
    if failed:
        return BatchFailed(
            run_id=state.run_id,
            batch_id=batch_id,
            merge_status="task_failed",
            errors=[f"task {t!r}: {gist(left_out[t])}" for t in failed],
            duration=duration,
        )
    return BatchCompleted(
        run_id=state.run_id,
        batch_id=batch_id,
        merge_status="success" if not left_out else "partial",
        duration=duration,
    )


# --- a merge chain ran: what it merged and what conflicted -----------------------------


def merge_events(
    run_id: str,
    batch_id: int,
    merged: Sequence[tuple[str, str]],
    conflicts: Sequence[tuple[str, tuple[str, ...]]],
    worktree_of: Mapping[str, str],
) -> list[RunEvent]:
    """A merge chain's result: each branch merged (task, merge commit) in order, then each
    that conflicted (task, files); recorded in one append."""
    events: list[RunEvent] = [
        BranchMerged(
            run_id=run_id,
            batch_id=batch_id,
            task_id=task_id,
            worktree_id=worktree_of[task_id],
            merge_commit=commit,
        )
        for task_id, commit in merged
    ]
    events += [
        MergeConflicted(
            run_id=run_id,
            batch_id=batch_id,
            task_id=task_id,
            worktree_id=worktree_of[task_id],
            files=files,
        )
        for task_id, files in conflicts
    ]
    return events


# --- the run's end ------------------------------------------------------------------------


def nothing_landed(state: RunState, tip: str) -> str | None:
    """The run's failure when its result is still the base and some task did not land
    (nothing of it could land); None: the result lands (or the base had it already)."""
    not_landed = [t for t in state.tasks.values() if t.status in NOT_LANDING_TASK]
    if tip != state.base_commit or not not_landed:
        return None
    return "nothing landed: " + "; ".join(f"task {t.task_id!r} {t.status}" for t in not_landed[:10])


def run_completed(state: RunState, tip: str, landed_on: str, reason: str) -> RunCompleted:
    """The run's end once its landing was tried: on `landed_on` (the base, or the run's
    result branch with the `reason` it stays there and the command that lands it)."""
    return RunCompleted(
        run_id=state.run_id,
        landed_commit=tip,
        landed_on=landed_on,
        land_command=land_command(state.run_id) if reason else None,
        not_landed_reason=reason,
    )
