"""The fold of a batch's events: start, merge, tests, culprits, landing and its end."""

from __future__ import annotations

from plait.domain.events import (
    BatchCompleted,
    BatchFailed,
    BatchLanded,
    BatchStarted,
    BranchMerged,
    CulpritFound,
    FellBackToSequential,
    MergeConflicted,
    MergeStarted,
    TestsFailed,
    TestsFlaky,
    TestsPassed,
)
from plait.domain.failures import named_failures
from plait.domain.lifecycles import BATCH, TASK
from plait.domain.run.entities import BatchState, TaskState, TestRunState
from plait.domain.run.moves import transit
from plait.domain.run.registry import folds
from plait.domain.run.state import RunState
from plait.domain.statuses import (
    BatchStatus,
    TaskStatus,
)

# BatchFailed.merge_status -> batch trigger: a cancelled batch, else a failure (a task that
# failed under `on_task_failure: stop`, or one that got no worktree).
FAILURE_TRIGGERS = {"cancelled": "cancel"}


@folds(BatchStarted)
def _batch_started(state: RunState, event: BatchStarted, at: str | None) -> None:
    state.require_active(event.TYPE)
    # A batch the plan did not list (e.g. added by a fallback) is created on the fly.
    batch = state.batches.get(event.batch_id) or BatchState(
        batch_id=event.batch_id, task_ids=[], can_parallel=event.can_parallel
    )
    transit((BATCH, batch, "start", str(event.batch_id)))
    state.batches[batch.batch_id] = batch
    batch.task_ids, batch.can_parallel = list(event.task_ids), event.can_parallel
    batch.merge_status, batch.errors, batch.duration = None, [], None
    batch.started_at, batch.ended_at = at, None
    for task_id in batch.task_ids:
        task = state.tasks.setdefault(task_id, TaskState(task_id=task_id, batch_id=batch.batch_id))
        task.batch_id = batch.batch_id
    state.current_batch = batch.batch_id


@folds(MergeStarted)
def _merge_started(state: RunState, event: MergeStarted, at: str | None) -> None:
    state.require_active(event.TYPE)
    batch = state.batch_for(event.batch_id, event.TYPE)
    transit((BATCH, batch, "merge", str(batch.batch_id)))
    batch.onto = event.onto
    batch.merge_started_at = batch.merge_started_at or at


@folds(BranchMerged)
def _branch_merged(state: RunState, event: BranchMerged, at: str | None) -> None:
    state.require_active(event.TYPE)
    state.batch_for(event.batch_id, event.TYPE, in_status=BatchStatus.MERGING)
    task = state.task_for(event.task_id, event.TYPE)
    transit((TASK, task, "merge", task.task_id))
    task.merge_commit = event.merge_commit


@folds(MergeConflicted)
def _merge_conflicted(state: RunState, event: MergeConflicted, at: str | None) -> None:
    state.require_active(event.TYPE)
    batch = state.batch_for(event.batch_id, event.TYPE, in_status=BatchStatus.MERGING)
    task = state.task_for(event.task_id, event.TYPE)
    transit((TASK, task, "conflict", task.task_id))
    task.conflict_files, task.merge_commit = list(event.files), None
    batch.conflicts.append({"task_id": task.task_id, "files": list(event.files)})


def _test_run(event: TestsPassed | TestsFailed | TestsFlaky, at: str | None) -> TestRunState:
    if isinstance(event, TestsFlaky):
        failing = named_failures(event.failed_tests, event.output_tail)
        return TestRunState(event.commit, True, 0, 0.0, at, event.log_path, failing, True)
    failing = (
        named_failures(event.failed_tests, event.output_tail)
        if isinstance(event, TestsFailed)
        else []
    )
    return TestRunState(
        commit=event.commit,
        passed=isinstance(event, TestsPassed),
        exit_code=event.exit_code,
        duration=event.duration,
        ended_at=at,
        log_path=event.log_path,
        failing_tests=failing,
    )


@folds(TestsPassed, TestsFailed)
def _tests_ran(state: RunState, event: TestsPassed | TestsFailed, at: str | None) -> None:
    state.require_active(event.TYPE)
    batch = state.batch_for(event.batch_id, event.TYPE)
    transit((BATCH, batch, "test", str(batch.batch_id)))
    batch.tests_passed = isinstance(event, TestsPassed)
    batch.test_exit_code, batch.test_output_tail = event.exit_code, event.output_tail
    failed = event if isinstance(event, TestsFailed) else None
    batch.test_timed_out = failed is not None and failed.timed_out
    batch.test_failed_tests = list(failed.failed_tests) if failed else []
    batch.test_problem = failed.problem if failed else ""
    batch.test_runs.append(_test_run(event, at))


@folds(TestsFlaky)
def _tests_flaky(state: RunState, event: TestsFlaky, at: str | None) -> None:
    state.require_active(event.TYPE)
    batch = state.batch_for(event.batch_id, event.TYPE)
    transit((BATCH, batch, "test", str(batch.batch_id)))
    batch.flaky, batch.test_output_tail = True, event.output_tail
    batch.test_runs.append(_test_run(event, at))


@folds(CulpritFound)
def _culprit_found(state: RunState, event: CulpritFound, at: str | None) -> None:
    state.require_active(event.TYPE)
    batch = state.batch_for(event.batch_id, event.TYPE, in_status=BatchStatus.TESTING)
    task = state.task_for(event.task_id, event.TYPE)
    transit((TASK, task, "eject", task.task_id))
    batch.culprits.append(task.task_id)
    # Without a JUnit report, the failing tests its red run's output names.
    task.broke_tests = named_failures(event.broke_tests, event.output_tail)
    broke = f" (it broke {', '.join(event.broke_tests)})" if event.broke_tests else ""
    task.error = f"ejected: the merged tests failed with this branch{broke}"
    task.merge_commit = None


@folds(BatchLanded)
def _batch_landed(state: RunState, event: BatchLanded, at: str | None) -> None:
    state.require_active(event.TYPE)
    batch = state.batch_for(event.batch_id, event.TYPE)
    merged = [
        state.tasks[task_id]
        for task_id in batch.task_ids
        if task_id in state.tasks
        and state.tasks[task_id].status == TaskStatus.SUCCEEDED
        and state.tasks[task_id].merge_commit is not None
    ]
    transit(
        (BATCH, batch, "land", str(batch.batch_id)),
        *((TASK, task, "land", task.task_id) for task in merged),
    )
    batch.landed_before, batch.landed_after = event.before, event.after
    batch.landed_at = at
    state.result_commit = event.after


@folds(BatchCompleted)
def _batch_completed(state: RunState, event: BatchCompleted, at: str | None) -> None:
    state.require_active(event.TYPE)
    batch = state.batch_for(event.batch_id, event.TYPE)
    transit((BATCH, batch, "complete", str(batch.batch_id)))
    batch.merge_status, batch.duration, batch.ended_at = event.merge_status, event.duration, at


@folds(BatchFailed)
def _batch_failed(state: RunState, event: BatchFailed, at: str | None) -> None:
    state.require_active(event.TYPE)
    batch = state.batch_for(event.batch_id, event.TYPE)
    trigger = FAILURE_TRIGGERS.get(event.merge_status, "fail")
    transit((BATCH, batch, trigger, str(batch.batch_id)))
    batch.merge_status, batch.errors = event.merge_status, list(event.errors)
    batch.duration, batch.ended_at = event.duration, at


@folds(FellBackToSequential)
def _fell_back(state: RunState, event: FellBackToSequential, at: str | None) -> None:
    state.require_active(event.TYPE)
    if event.batch_id is None:
        state.mode, state.reason = "sequential", event.reason
        return
    batch = state.batch_for(event.batch_id, event.TYPE)
    transit((BATCH, batch, "fall_back", str(batch.batch_id)))
    batch.fell_back_reason = event.reason
