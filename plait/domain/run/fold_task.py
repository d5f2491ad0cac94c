"""The fold of a task's events: worktrees, attempts, output, conflicts, requeues and kept work."""

from __future__ import annotations

import dataclasses

from plait.domain.errors import InvalidTransition
from plait.domain.events import (
    AgentReported,
    ConflictResolutionFailed,
    ConflictResolutionStarted,
    ConflictResolved,
    TaskChangedNothing,
    TaskFailed,
    TaskInterrupted,
    TaskOutput,
    TaskRequeued,
    TaskSkipped,
    TaskStarted,
    TaskSucceeded,
    WorkKept,
    WorktreeCreated,
    WorktreeRemoved,
)
from plait.domain.lifecycles import TASK
from plait.domain.run.entities import AttemptState, TaskState
from plait.domain.run.moves import chain, end_attempt, last_line, transit
from plait.domain.run.registry import folds
from plait.domain.run.state import RunState
from plait.domain.statuses import (
    BatchStatus,
    TaskStatus,
)

# What a fresh worktree keeps of the task: who it is, and what all its attempts add up to.
_KEPT_ACROSS_ATTEMPTS = (
    "task_id", "status", "title", "depends_on", "kept_branch", "kept_ref", "attempts",
    "total_tokens_in", "total_tokens_out", "total_cost_usd",
)  # fmt: skip


@folds(WorktreeCreated)
def _worktree_created(state: RunState, event: WorktreeCreated, at: str | None) -> None:
    state.require_active(event.TYPE)
    state.home_for(event.batch_id, event.TYPE, in_status=BatchStatus.RUNNING)
    task = state.task_for(event.task_id, event.TYPE)
    transit((TASK, task, "provision", task.task_id))
    # A fresh worktree is a fresh attempt: nothing of the previous one still describes it.
    fresh = TaskState(
        batch_id=event.batch_id, **{name: getattr(task, name) for name in _KEPT_ACROSS_ATTEMPTS}
    )
    for spec in dataclasses.fields(TaskState):
        setattr(task, spec.name, getattr(fresh, spec.name))
    task.attempt, task.worktree_id = event.attempt, event.worktree_id
    task.worktree_path, task.branch, task.base_commit = event.path, event.branch, event.base_commit
    task.attempts.append(AttemptState(event.attempt, event.worktree_id, event.base_commit))


@folds(TaskStarted)
def _task_started(state: RunState, event: TaskStarted, at: str | None) -> None:
    state.require_active(event.TYPE)
    state.home_for(event.batch_id, event.TYPE, in_status=BatchStatus.RUNNING)
    task = state.task_for(event.task_id, event.TYPE)
    if task.worktree_id != event.worktree_id:
        raise InvalidTransition(
            f"task {task.task_id}", task.status, f"start in {event.worktree_id}"
        )
    transit((TASK, task, "start", task.task_id))
    task.command, task.started_at = list(event.command), at
    task.agent, task.agent_version, task.model = event.agent, event.agent_version, event.model
    attempt = task.current_attempt()
    if attempt is not None:
        attempt.status, attempt.started_at, attempt.log_path = task.status, at, event.log_path


@folds(AgentReported)
def _agent_reported(state: RunState, event: AgentReported, at: str | None) -> None:
    task = state.task_for(event.task_id, event.TYPE)
    if event.worktree_id != task.worktree_id:
        return  # a report of an earlier attempt (a resolution session): counted below only
    task.model = event.model or task.model
    task.session_id = event.session_id
    task.tokens_in, task.tokens_out, task.cost_usd = (
        event.tokens_in,
        event.tokens_out,
        event.cost_usd,
    )
    task.total_tokens_in += event.tokens_in or 0
    task.total_tokens_out += event.tokens_out or 0
    task.total_cost_usd += event.cost_usd or 0.0


@folds(TaskChangedNothing)
def _task_changed_nothing(state: RunState, event: TaskChangedNothing, at: str | None) -> None:
    state.require_active(event.TYPE)
    task = state.task_for(event.task_id, event.TYPE)
    transit((TASK, task, "find_no_change", task.task_id))
    task.commit, task.changed_files = None, []
    task.duration, task.ended_at, task.error = event.duration, at, "changed nothing"
    end_attempt(task, at, duration=event.duration, exit_code=0, error=task.error)


@folds(TaskOutput)
def _task_output(state: RunState, event: TaskOutput, at: str | None) -> None:
    task = state.task_for(event.task_id, event.TYPE)
    line = last_line(event.text)
    if line is not None and event.worktree_id == task.worktree_id:
        task.last_output_line = line


@folds(TaskSucceeded)
def _task_succeeded(state: RunState, event: TaskSucceeded, at: str | None) -> None:
    state.require_active(event.TYPE)
    task = state.task_for(event.task_id, event.TYPE)
    transit((TASK, task, "succeed", task.task_id))
    task.commit, task.changed_files = event.commit, list(event.changed_files)
    task.duration, task.ended_at, task.error = event.duration, at, None
    end_attempt(task, at, duration=event.duration, exit_code=0, commit=event.commit)


@folds(TaskFailed)
def _task_failed(state: RunState, event: TaskFailed, at: str | None) -> None:
    state.require_active(event.TYPE)
    task = state.task_for(event.task_id, event.TYPE)
    # A failure that will be retried goes on to wait for its next attempt's worktree.
    chain(task, ("fail", "retry") if event.will_retry else ("fail",))
    task.exit_code, task.error, task.will_retry = event.exit_code, event.error, event.will_retry
    task.duration, task.ended_at, task.timed_out = event.duration, at, event.timed_out
    end_attempt(task, at, duration=event.duration, exit_code=event.exit_code, error=event.error)
    attempt = task.current_attempt()
    if attempt is not None:
        attempt.status = TaskStatus.FAILED


@folds(TaskInterrupted)
def _task_interrupted(state: RunState, event: TaskInterrupted, at: str | None) -> None:
    state.require_active(event.TYPE)
    task = state.task_for(event.task_id, event.TYPE)
    transit((TASK, task, "interrupt", task.task_id))
    task.error = f"interrupted: {event.reason}" if event.reason else "interrupted"
    task.ended_at = at
    end_attempt(task, at, interrupted=True, error=task.error)


@folds(ConflictResolutionStarted)
def _resolution_started(state: RunState, event: ConflictResolutionStarted, at: str | None) -> None:
    state.require_active(event.TYPE)
    task = state.task_for(event.task_id, event.TYPE)
    transit((TASK, task, "resolve", task.task_id))
    task.conflict_files, task.started_at = list(event.files), at
    attempt = task.current_attempt()
    if attempt is not None:
        attempt.status, attempt.resolution = task.status, True
        attempt.started_at, attempt.log_path = at, event.log_path


@folds(ConflictResolved)
def _conflict_resolved(state: RunState, event: ConflictResolved, at: str | None) -> None:
    state.require_active(event.TYPE)
    task = state.task_for(event.task_id, event.TYPE)
    transit((TASK, task, "resolved", task.task_id))
    task.commit, task.changed_files = event.commit, list(task.conflict_files)
    task.duration, task.ended_at, task.error = event.duration, at, None
    end_attempt(task, at, duration=event.duration, commit=event.commit)


@folds(ConflictResolutionFailed)
def _resolution_failed(state: RunState, event: ConflictResolutionFailed, at: str | None) -> None:
    state.require_active(event.TYPE)
    task = state.task_for(event.task_id, event.TYPE)
    transit((TASK, task, "give_up", task.task_id))
    task.error, task.ended_at = f"could not resolve the conflict: {event.reason}", at
    end_attempt(task, at, error=task.error)
    attempt = task.current_attempt()
    if attempt is not None:
        attempt.status = TaskStatus.FAILED


@folds(TaskRequeued)
def _task_requeued(state: RunState, event: TaskRequeued, at: str | None) -> None:
    state.require_active(event.TYPE)
    state.home_for(event.batch_id, event.TYPE)
    task = state.task_for(event.task_id, event.TYPE)
    transit((TASK, task, "requeue", task.task_id))
    task.batch_id, task.skip_reason = event.batch_id, None


@folds(TaskSkipped)
def _task_skipped(state: RunState, event: TaskSkipped, at: str | None) -> None:
    state.require_active(event.TYPE)
    task = state.task_for(event.task_id, event.TYPE)
    transit((TASK, task, "skip", task.task_id))
    task.skip_reason, task.ended_at = event.reason, at


@folds(WorktreeRemoved)
def _worktree_removed(state: RunState, event: WorktreeRemoved, at: str | None) -> None:
    task = state.task_for(event.task_id, event.TYPE)
    if event.worktree_id != task.worktree_id:
        return  # an older attempt's worktree
    if task.worktree_removed:
        raise InvalidTransition(f"task {task.task_id}", "its worktree removed", event.TYPE)
    task.worktree_removed = True


@folds(WorkKept)
def _work_kept(state: RunState, event: WorkKept, at: str | None) -> None:
    task = state.task_for(event.task_id, event.TYPE)
    if task.status == TaskStatus.CONFLICTED:
        transit((TASK, task, "keep", task.task_id))
    if event.branch:
        task.kept_branch = event.branch
    if event.ref:
        task.kept_ref = event.ref
