"""The fold of the run's own events: creation, mode, baseline, stop, end and resume."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from plait.domain.errors import InvalidTransition
from plait.domain.events import (
    BaselineTested,
    ExecutionModeSelected,
    LandRequested,
    RunCompleted,
    RunCreated,
    RunFailed,
    RunResumed,
    RunStopped,
    StopRequested,
)
from plait.domain.failures import named_failures
from plait.domain.lifecycles import RUN
from plait.domain.run.entities import READY_QUEUE, BatchState, TaskState
from plait.domain.run.moves import transit_run
from plait.domain.run.registry import folds
from plait.domain.run.state import RunState
from plait.domain.statuses import (
    RunStatus,
)


@folds(RunCreated)
def _run_created(state: RunState, event: RunCreated, at: str | None) -> None:
    if state.status is not None:
        raise InvalidTransition(state.name, state.status, event.TYPE)
    batches = [_planned_batch(raw) for raw in event.batches]  # may raise: before any change
    planned = {
        str(raw.get("id")): raw for raw in event.plan.get("tasks", ()) if isinstance(raw, Mapping)
    }
    state.run_id, state.project_id = event.run_id, event.project_id
    state.status = RUN.initial
    state.base_branch, state.base_commit = event.base_branch, event.base_commit
    state.repo_path, state.max_concurrency = event.repo_path, event.max_concurrency
    state.worktree_root = event.worktree_root
    state.on_task_failure = str(event.plan.get("on_task_failure") or "stop")
    state.has_tests = bool(event.plan.get("test_command"))
    state.schedule = str(event.plan.get("schedule") or "batch")
    state.created_at = at
    if state.schedule == "ready":  # no batch yet: merge rounds are made as tasks finish
        for task_id, raw in planned.items():
            state.tasks[task_id] = _planned_task(task_id, READY_QUEUE, raw)
    for batch in batches:
        state.batches[batch.batch_id] = batch
        for task_id in batch.task_ids:
            state.tasks[task_id] = _planned_task(task_id, batch.batch_id, planned.get(task_id, {}))


def _planned_task(task_id: str, batch_id: int, raw: Mapping[str, Any]) -> TaskState:
    return TaskState(
        task_id=task_id,
        batch_id=batch_id,
        title=str(raw.get("title") or ""),
        depends_on=[str(d) for d in raw.get("depends_on") or ()],
    )


def _planned_batch(raw: Mapping[str, Any]) -> BatchState:
    return BatchState(
        batch_id=int(raw["batch_id"]),
        task_ids=[str(task_id) for task_id in raw.get("task_ids", ())],
        can_parallel=bool(raw.get("can_parallel", False)),
    )


@folds(ExecutionModeSelected)
def _mode_selected(state: RunState, event: ExecutionModeSelected, at: str | None) -> None:
    if state.status == RunStatus.PENDING:
        transit_run(state, "start")
        state.started_at = at
    elif state.status != RunStatus.RUNNING:
        raise InvalidTransition(state.name, state.run_status(), event.TYPE)
    state.mode, state.reason = event.mode, event.reason


@folds(BaselineTested)
def _baseline_tested(state: RunState, event: BaselineTested, at: str | None) -> None:
    state.require_active(event.TYPE)
    state.baseline_passed, state.baseline_allowed = event.passed, event.allowed
    state.baseline_failing_tests = named_failures(event.failed_tests, event.output_tail)
    state.baseline_ended_at, state.baseline_duration = at, event.duration
    state.baseline_problem = event.problem


@folds(StopRequested)
def _stop_requested(state: RunState, event: StopRequested, at: str | None) -> None:
    transit_run(state, "request_stop")
    state.stop_reason = event.reason


@folds(RunCompleted)
def _run_completed(state: RunState, event: RunCompleted, at: str | None) -> None:
    on_base = event.landed_on == state.base_branch
    if not on_base:
        trigger = "keep"
    elif event.landed_commit == state.base_commit:
        trigger = "succeed"
    else:
        trigger = "land"
    transit_run(state, trigger)
    state.result_commit, state.ended_at = event.landed_commit, at
    state.landed_on = event.landed_on if on_base else None
    state.landed_commit = event.landed_commit if trigger == "land" else None
    # Older runs recorded a git command instead of the reason.
    state.not_landed_reason = (
        "" if on_base else (event.not_landed_reason or event.land_command or "")
    )


@folds(RunFailed)
def _run_failed(state: RunState, event: RunFailed, at: str | None) -> None:
    transit_run(state, "fail", *state.in_flight())
    state.error, state.ended_at = event.error, at


@folds(RunStopped)
def _run_stopped(state: RunState, event: RunStopped, at: str | None) -> None:
    transit_run(state, "stop", *state.in_flight())
    state.stop_reason = event.reason or state.stop_reason
    state.ended_at = at


@folds(RunResumed)
def _run_resumed(state: RunState, event: RunResumed, at: str | None) -> None:
    transit_run(state, "resume", *state.in_flight())
    state.resumes += 1
    state.ended_at, state.error, state.stop_reason = None, None, None
    state.land_requested, state.not_landed_reason = False, ""


@folds(LandRequested)
def _land_requested(state: RunState, event: LandRequested, at: str | None) -> None:
    state.require_active(event.TYPE)
    state.land_requested = True
