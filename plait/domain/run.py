"""The run aggregate's state, folded from the events of one run stream.

The same fold serves the aggregate (replay a whole stream) and projections (load a JSON
snapshot, apply one event, store the snapshot again):

    state = replay(events)                                # aggregate
    state = RunState.from_json_dict(row).apply(event, recorded_at)
    row = state.to_json_dict()                            # projection

`RunState.apply` updates the state in place and returns it: copying a run with thousands
of tasks on every event would make replay quadratic. It is all-or-nothing: every check and
lifecycle lookup runs before the first change, so an event that raises leaves the state as
it was. An event the lifecycles forbid (a task that succeeds before it started, a batch
landed twice, an event for an unknown batch or task, for another run, or after the run
ended) raises InvalidTransition, so replay detects a corrupted history.

Which event fires which trigger is drawn in plait.domain.lifecycles. Beyond the tables:

- ExecutionModeSelected starts a created run; on a running run it only records the mode.
- Batch and task progress needs a running (or stopping) run. Worktrees are created and
  tasks started only in a running batch; branches merge or conflict only in a merging
  batch; a culprit is found only in a testing batch.
- TaskFailed with will_retry fires `fail` then `retry`: the task waits (`requested`) for
  its next attempt's worktree.
- BatchFailed picks its end from merge_status: conflicts -> conflicted, test_failed ->
  test_failed, cancelled -> cancelled, anything else -> failed.
- RunStopped, RunFailed and RunResumed cancel every batch still in flight (running,
  merging, testing): after a stop or a crash nothing is in flight, and a resumed run
  restarts the batch with a new BatchStarted.
- TaskOutput is accepted in any state and ignored for an older worktree: output chunks may
  be appended after the task's end event, and a history must not become unreplayable
  because of a late log line.
- WorktreeRemoved fires `remove` only for the task's current worktree while the task is not
  waiting to be re-run; removing an older attempt's worktree changes nothing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from plait.domain.errors import InvalidTransition
from plait.domain.events import (
    AgentReported,
    BaselineTested,
    BatchCompleted,
    BatchFailed,
    BatchLanded,
    BatchStarted,
    BranchMerged,
    ConflictResolutionFailed,
    ConflictResolutionStarted,
    ConflictResolved,
    CulpritFound,
    DomainEvent,
    ExecutionModeSelected,
    FellBackToSequential,
    MergeConflicted,
    MergeStarted,
    RunCompleted,
    RunCreated,
    RunEvent,
    RunFailed,
    RunResumed,
    RunStopped,
    StopRequested,
    TaskChangedNothing,
    TaskFailed,
    TaskInterrupted,
    TaskOutput,
    TaskRequeued,
    TaskStarted,
    TaskSucceeded,
    TestsFailed,
    TestsFlaky,
    TestsPassed,
    WorkKept,
    WorktreeCreated,
    WorktreeRemoved,
)
from plait.domain.lifecycles import BATCH, RUN, TASK, HasStatus, Lifecycle

SNAPSHOT_VERSION = 1
OUTPUT_LINE_LIMIT = 500
ACTIVE_RUN = frozenset({"running", "stopping"})
IN_FLIGHT_BATCH = frozenset({"running", "merging", "testing"})

# BatchFailed.merge_status -> batch trigger; any other status is a plain failure.
FAILURE_TRIGGERS = {
    "conflicts": "conflict",
    "conflicted": "conflict",
    "test_failed": "fail_tests",
    "tests_failed": "fail_tests",
    "cancelled": "cancel",
}


@dataclass(slots=True)
class BatchState:
    batch_id: int
    task_ids: list[str]
    can_parallel: bool
    status: str = BATCH.initial
    merge_status: str | None = None
    duration: float | None = None
    errors: list[str] = field(default_factory=list)
    onto: str | None = None
    tests_passed: bool | None = None
    test_exit_code: int | None = None
    test_output_tail: str = ""
    test_timed_out: bool = False
    test_failed_tests: list[str] = field(default_factory=list)  # from a JUnit report
    test_problem: str = ""  # the tests could not run (a setup failed, command not found)
    flaky: bool = False
    culprits: list[str] = field(default_factory=list)
    landed_before: str | None = None
    landed_after: str | None = None
    fell_back_reason: str | None = None
    started_at: str | None = None
    ended_at: str | None = None


@dataclass(slots=True)
class TaskState:
    task_id: str
    batch_id: int | None
    status: str = TASK.initial
    attempt: int = 0
    worktree_id: str | None = None
    worktree_path: str | None = None
    branch: str | None = None
    base_commit: str | None = None
    command: list[str] = field(default_factory=list)
    last_output_line: str = ""
    duration: float | None = None
    commit: str | None = None
    changed_files: list[str] = field(default_factory=list)
    merge_commit: str | None = None
    conflict_files: list[str] = field(default_factory=list)
    exit_code: int | None = None
    error: str | None = None
    will_retry: bool = False
    timed_out: bool = False
    broke_tests: list[str] = field(default_factory=list)  # as the culprit: what it broke
    kept_branch: str | None = None
    started_at: str | None = None
    ended_at: str | None = None
    agent: str = ""
    agent_version: str = ""
    model: str = ""
    session_id: str = ""
    tokens_in: int | None = None
    tokens_out: int | None = None
    cost_usd: float | None = None
    # Over every attempt of the task: what its agent sessions cost in all.
    total_tokens_in: int = 0
    total_tokens_out: int = 0
    total_cost_usd: float = 0.0


Move = tuple[Lifecycle, HasStatus, str, str]


@dataclass
class RunState:
    run_id: str = ""
    project_id: str = ""
    status: str | None = None  # None until RunCreated
    mode: str | None = None
    reason: str = ""
    base_branch: str | None = None
    base_commit: str | None = None
    repo_path: str | None = None
    worktree_root: str = ""
    max_concurrency: int | None = None
    created_at: str | None = None
    started_at: str | None = None
    ended_at: str | None = None
    baseline_passed: bool | None = None
    baseline_allowed: bool = False
    # Set when the baseline refused the run's configuration (see BaselineTested.problem).
    baseline_problem: str = ""
    stop_reason: str | None = None
    error: str | None = None
    resumes: int = 0
    landed_commit: str | None = None
    landed_on: str | None = None
    land_command: str | None = None
    current_batch: int | None = None
    batches: dict[int, BatchState] = field(default_factory=dict)
    tasks: dict[str, TaskState] = field(default_factory=dict)

    # --- derived ----------------------------------------------------------------------

    @property
    def batches_total(self) -> int:
        return len(self.batches)

    @property
    def completed_batches(self) -> int:
        return sum(1 for batch in self.batches.values() if batch.status == "completed")

    def status_view(self) -> dict[str, Any]:
        """The seed status endpoint's fields, plus the run, its batches and its tasks."""
        return {
            "run_id": self.run_id,
            "project_id": self.project_id,
            "status": self.status,
            "execution_mode": self.mode or "sequential",
            "reason": self.reason,
            "parallel_started_at": self.started_at if self.mode == "parallel" else None,
            "batches_total": self.batches_total,
            "current_batch": self.current_batch,
            "completed_batches": self.completed_batches,
            "landed_commit": self.landed_commit,
            "error": self.error,
            # What the run's agent sessions used, over every task and attempt.
            "tokens_in": sum(t.total_tokens_in for t in self.tasks.values()),
            "tokens_out": sum(t.total_tokens_out for t in self.tasks.values()),
            "cost_usd": round(sum(t.total_cost_usd for t in self.tasks.values()), 6),
            "batches": [dataclasses.asdict(b) for b in self._sorted_batches()],
            "tasks": [dataclasses.asdict(t) for t in self.tasks.values()],
        }

    # --- snapshots --------------------------------------------------------------------

    def to_json_dict(self) -> dict[str, Any]:
        """A JSON-safe snapshot; `from_json_dict` restores it exactly."""
        data = {
            spec.name: getattr(self, spec.name)
            for spec in dataclasses.fields(self)
            if spec.name not in ("batches", "tasks")
        }
        data["snapshot_version"] = SNAPSHOT_VERSION
        data["batches"] = [dataclasses.asdict(b) for b in self._sorted_batches()]
        data["tasks"] = [dataclasses.asdict(t) for t in self.tasks.values()]
        return data

    @classmethod
    def from_json_dict(cls, data: Mapping[str, Any]) -> RunState:
        """Restore a snapshot; keys this version does not know are ignored."""
        state = cls(**_known(cls, data, exclude=("batches", "tasks")))
        for raw in data.get("batches", ()):
            batch = BatchState(**_known(BatchState, raw))
            state.batches[batch.batch_id] = batch
        for raw in data.get("tasks", ()):
            task = TaskState(**_known(TaskState, raw))
            state.tasks[task.task_id] = task
        return state

    # --- the fold ---------------------------------------------------------------------

    def apply(self, event: DomainEvent, recorded_at: str | None = None) -> RunState:
        """Fold one run-stream event into this state (in place) and return the state."""
        if not isinstance(event, RunEvent):
            raise TypeError(f"{event.TYPE} is not a run-stream event")
        self._check_stream(event)
        _dispatch(self, event, recorded_at)
        return self

    def _check_stream(self, event: RunEvent) -> None:
        if self.status is None and not isinstance(event, RunCreated):
            raise InvalidTransition(f"run {event.run_id}", "absent", event.TYPE)
        if self.status is not None and event.run_id != self.run_id:
            raise InvalidTransition(self._name, self.status, f"{event.TYPE} of run {event.run_id}")

    @property
    def _name(self) -> str:
        return f"run {self.run_id}"

    def _sorted_batches(self) -> list[BatchState]:
        return [self.batches[key] for key in sorted(self.batches)]

    # --- lookups and guards (they raise before anything changes) ------------------------

    def _run_status(self) -> str:
        assert self.status is not None, "_check_stream lets only RunCreated through"
        return self.status

    def _require_active(self, trigger: str) -> None:
        if self.status not in ACTIVE_RUN:
            raise InvalidTransition(self._name, str(self.status), trigger)

    def _batch(self, batch_id: int, trigger: str, *, in_status: str | None = None) -> BatchState:
        batch = self.batches.get(batch_id)
        if batch is None:
            raise InvalidTransition(f"batch {batch_id}", "absent", trigger)
        if in_status is not None and batch.status != in_status:
            raise InvalidTransition(f"batch {batch_id}", batch.status, trigger)
        return batch

    def _task(self, task_id: str, trigger: str) -> TaskState:
        task = self.tasks.get(task_id)
        if task is None:
            raise InvalidTransition(f"task {task_id}", "absent", trigger)
        return task

    def _in_flight(self) -> list[Move]:
        return [
            (BATCH, batch, "cancel", str(batch.batch_id))
            for batch in self._sorted_batches()
            if batch.status in IN_FLIGHT_BATCH
        ]


def _transit(*moves: Move) -> None:
    """Look every move up in its shared machine, then make them all: an event applies whole
    or not at all. The machines carry no callbacks, so setting the looked-up status is all
    a transition does (and four times cheaper than running it through transitions)."""
    destinations = [
        lifecycle.next_state(entity.status, trigger, entity_id)
        for lifecycle, entity, trigger, entity_id in moves
    ]
    for (_, entity, _, _), status in zip(moves, destinations, strict=True):
        entity.status = status


def _chain(
    lifecycle: Lifecycle, entity: HasStatus, triggers: Iterable[str], entity_id: str
) -> None:
    """Several triggers in a row on one entity."""
    status = entity.status
    for trigger in triggers:
        status = lifecycle.next_state(status, trigger, entity_id)
    entity.status = status


def _transit_run(state: RunState, trigger: str, *others: Move) -> None:
    """Like `_transit`, with the run's own move first (its status is None before creation)."""
    status = RUN.next_state(state._run_status(), trigger, state.run_id)
    _transit(*others)
    state.status = status


def _known(cls: type[Any], data: Mapping[str, Any], exclude: Iterable[str] = ()) -> dict[str, Any]:
    names = {spec.name for spec in dataclasses.fields(cls)} - set(exclude)
    return {key: value for key, value in data.items() if key in names}


def _last_line(text: str) -> str | None:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:OUTPUT_LINE_LIMIT] if lines else None


# --- handlers: one per event type --------------------------------------------------------


def _run_created(state: RunState, event: RunCreated, at: str | None) -> None:
    if state.status is not None:
        raise InvalidTransition(state._name, state.status, event.TYPE)
    batches = [_planned_batch(raw) for raw in event.batches]  # may raise: before any change
    state.run_id, state.project_id = event.run_id, event.project_id
    state.status = RUN.initial
    state.base_branch, state.base_commit = event.base_branch, event.base_commit
    state.repo_path, state.max_concurrency = event.repo_path, event.max_concurrency
    state.worktree_root = event.worktree_root
    state.created_at = at
    for batch in batches:
        state.batches[batch.batch_id] = batch
        for task_id in batch.task_ids:
            state.tasks[task_id] = TaskState(task_id=task_id, batch_id=batch.batch_id)


def _planned_batch(raw: Mapping[str, Any]) -> BatchState:
    return BatchState(
        batch_id=int(raw["batch_id"]),
        task_ids=[str(task_id) for task_id in raw.get("task_ids", ())],
        can_parallel=bool(raw.get("can_parallel", False)),
    )


def _mode_selected(state: RunState, event: ExecutionModeSelected, at: str | None) -> None:
    if state.status == "created":
        _transit_run(state, "start")
        state.started_at = at
    elif state.status != "running":
        raise InvalidTransition(state._name, state._run_status(), event.TYPE)
    state.mode, state.reason = event.mode, event.reason


def _baseline_tested(state: RunState, event: BaselineTested, at: str | None) -> None:
    state._require_active(event.TYPE)
    state.baseline_passed, state.baseline_allowed = event.passed, event.allowed
    state.baseline_problem = event.problem


def _batch_started(state: RunState, event: BatchStarted, at: str | None) -> None:
    state._require_active(event.TYPE)
    # A batch the plan did not list (e.g. added by a fallback) is created on the fly.
    batch = state.batches.get(event.batch_id) or BatchState(
        batch_id=event.batch_id, task_ids=[], can_parallel=event.can_parallel
    )
    _transit((BATCH, batch, "start", str(event.batch_id)))
    state.batches[batch.batch_id] = batch
    batch.task_ids, batch.can_parallel = list(event.task_ids), event.can_parallel
    batch.merge_status, batch.errors, batch.duration = None, [], None
    batch.started_at, batch.ended_at = at, None
    for task_id in batch.task_ids:
        task = state.tasks.setdefault(task_id, TaskState(task_id=task_id, batch_id=batch.batch_id))
        task.batch_id = batch.batch_id
    state.current_batch = batch.batch_id


def _worktree_created(state: RunState, event: WorktreeCreated, at: str | None) -> None:
    state._require_active(event.TYPE)
    state._batch(event.batch_id, event.TYPE, in_status="running")
    task = state._task(event.task_id, event.TYPE)
    _transit((TASK, task, "provision", task.task_id))
    # A fresh worktree is a fresh attempt: nothing of the previous one still describes it.
    fresh = TaskState(
        task_id=task.task_id,
        batch_id=event.batch_id,
        status=task.status,
        kept_branch=task.kept_branch,
        # What the task's agent sessions cost is summed over every attempt.
        total_tokens_in=task.total_tokens_in,
        total_tokens_out=task.total_tokens_out,
        total_cost_usd=task.total_cost_usd,
    )
    for spec in dataclasses.fields(TaskState):
        setattr(task, spec.name, getattr(fresh, spec.name))
    task.attempt, task.worktree_id = event.attempt, event.worktree_id
    task.worktree_path, task.branch, task.base_commit = event.path, event.branch, event.base_commit


def _task_started(state: RunState, event: TaskStarted, at: str | None) -> None:
    state._require_active(event.TYPE)
    state._batch(event.batch_id, event.TYPE, in_status="running")
    task = state._task(event.task_id, event.TYPE)
    if task.worktree_id != event.worktree_id:
        raise InvalidTransition(
            f"task {task.task_id}", task.status, f"start in {event.worktree_id}"
        )
    _transit((TASK, task, "start", task.task_id))
    task.command, task.started_at = list(event.command), at
    task.agent, task.agent_version, task.model = event.agent, event.agent_version, event.model


def _agent_reported(state: RunState, event: AgentReported, at: str | None) -> None:
    task = state._task(event.task_id, event.TYPE)
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


def _task_changed_nothing(state: RunState, event: TaskChangedNothing, at: str | None) -> None:
    state._require_active(event.TYPE)
    task = state._task(event.task_id, event.TYPE)
    _transit((TASK, task, "find_no_change", task.task_id))
    task.commit, task.changed_files = None, []
    task.duration, task.ended_at, task.error = event.duration, at, "changed nothing"


def _task_output(state: RunState, event: TaskOutput, at: str | None) -> None:
    task = state._task(event.task_id, event.TYPE)
    line = _last_line(event.text)
    if line is not None and event.worktree_id == task.worktree_id:
        task.last_output_line = line


def _task_succeeded(state: RunState, event: TaskSucceeded, at: str | None) -> None:
    state._require_active(event.TYPE)
    task = state._task(event.task_id, event.TYPE)
    _transit((TASK, task, "succeed", task.task_id))
    task.commit, task.changed_files = event.commit, list(event.changed_files)
    task.duration, task.ended_at, task.error = event.duration, at, None


def _task_failed(state: RunState, event: TaskFailed, at: str | None) -> None:
    state._require_active(event.TYPE)
    task = state._task(event.task_id, event.TYPE)
    # A failure that will be retried goes on to wait for its next attempt's worktree.
    _chain(TASK, task, ("fail", "retry") if event.will_retry else ("fail",), task.task_id)
    task.exit_code, task.error, task.will_retry = event.exit_code, event.error, event.will_retry
    task.duration, task.ended_at, task.timed_out = event.duration, at, event.timed_out


def _task_interrupted(state: RunState, event: TaskInterrupted, at: str | None) -> None:
    state._require_active(event.TYPE)
    task = state._task(event.task_id, event.TYPE)
    _transit((TASK, task, "interrupt", task.task_id))
    task.error = f"interrupted: {event.reason}" if event.reason else "interrupted"
    task.ended_at = at


def _merge_started(state: RunState, event: MergeStarted, at: str | None) -> None:
    state._require_active(event.TYPE)
    batch = state._batch(event.batch_id, event.TYPE)
    _transit((BATCH, batch, "merge", str(batch.batch_id)))
    batch.onto = event.onto


def _branch_merged(state: RunState, event: BranchMerged, at: str | None) -> None:
    state._require_active(event.TYPE)
    state._batch(event.batch_id, event.TYPE, in_status="merging")
    task = state._task(event.task_id, event.TYPE)
    _transit((TASK, task, "merge", task.task_id))
    task.merge_commit = event.merge_commit


def _merge_conflicted(state: RunState, event: MergeConflicted, at: str | None) -> None:
    state._require_active(event.TYPE)
    state._batch(event.batch_id, event.TYPE, in_status="merging")
    task = state._task(event.task_id, event.TYPE)
    _transit((TASK, task, "conflict", task.task_id))
    task.conflict_files, task.merge_commit = list(event.files), None


def _resolution_started(state: RunState, event: ConflictResolutionStarted, at: str | None) -> None:
    state._require_active(event.TYPE)
    task = state._task(event.task_id, event.TYPE)
    _transit((TASK, task, "resolve", task.task_id))
    task.conflict_files, task.started_at = list(event.files), at


def _conflict_resolved(state: RunState, event: ConflictResolved, at: str | None) -> None:
    state._require_active(event.TYPE)
    task = state._task(event.task_id, event.TYPE)
    _transit((TASK, task, "resolved", task.task_id))
    task.commit, task.changed_files = event.commit, list(task.conflict_files)
    task.duration, task.ended_at, task.error = event.duration, at, None


def _resolution_failed(state: RunState, event: ConflictResolutionFailed, at: str | None) -> None:
    state._require_active(event.TYPE)
    task = state._task(event.task_id, event.TYPE)
    _transit((TASK, task, "give_up", task.task_id))
    task.error, task.ended_at = f"could not resolve the conflict: {event.reason}", at


def _tests_ran(state: RunState, event: TestsPassed | TestsFailed, at: str | None) -> None:
    state._require_active(event.TYPE)
    batch = state._batch(event.batch_id, event.TYPE)
    _transit((BATCH, batch, "test", str(batch.batch_id)))
    batch.tests_passed = isinstance(event, TestsPassed)
    batch.test_exit_code, batch.test_output_tail = event.exit_code, event.output_tail
    failed = event if isinstance(event, TestsFailed) else None
    batch.test_timed_out = failed is not None and failed.timed_out
    batch.test_failed_tests = list(failed.failed_tests) if failed else []
    batch.test_problem = failed.problem if failed else ""


def _tests_flaky(state: RunState, event: TestsFlaky, at: str | None) -> None:
    state._require_active(event.TYPE)
    batch = state._batch(event.batch_id, event.TYPE)
    _transit((BATCH, batch, "test", str(batch.batch_id)))
    batch.flaky, batch.test_output_tail = True, event.output_tail


def _culprit_found(state: RunState, event: CulpritFound, at: str | None) -> None:
    state._require_active(event.TYPE)
    batch = state._batch(event.batch_id, event.TYPE, in_status="testing")
    task = state._task(event.task_id, event.TYPE)
    _transit((TASK, task, "eject", task.task_id))
    batch.culprits.append(task.task_id)
    task.broke_tests = list(event.broke_tests)
    broke = f" (it broke {', '.join(event.broke_tests)})" if event.broke_tests else ""
    task.error = f"ejected: the merged tests failed with this branch{broke}"
    task.merge_commit = None


def _batch_landed(state: RunState, event: BatchLanded, at: str | None) -> None:
    state._require_active(event.TYPE)
    batch = state._batch(event.batch_id, event.TYPE)
    _transit((BATCH, batch, "land", str(batch.batch_id)))
    batch.landed_before, batch.landed_after = event.before, event.after
    state.landed_commit = event.after


def _batch_completed(state: RunState, event: BatchCompleted, at: str | None) -> None:
    state._require_active(event.TYPE)
    batch = state._batch(event.batch_id, event.TYPE)
    _transit((BATCH, batch, "complete", str(batch.batch_id)))
    batch.merge_status, batch.duration, batch.ended_at = event.merge_status, event.duration, at


def _batch_failed(state: RunState, event: BatchFailed, at: str | None) -> None:
    state._require_active(event.TYPE)
    batch = state._batch(event.batch_id, event.TYPE)
    trigger = FAILURE_TRIGGERS.get(event.merge_status, "fail")
    _transit((BATCH, batch, trigger, str(batch.batch_id)))
    batch.merge_status, batch.errors = event.merge_status, list(event.errors)
    batch.duration, batch.ended_at = event.duration, at


def _fell_back(state: RunState, event: FellBackToSequential, at: str | None) -> None:
    state._require_active(event.TYPE)
    if event.batch_id is None:
        state.mode, state.reason = "sequential", event.reason
        return
    batch = state._batch(event.batch_id, event.TYPE)
    _transit((BATCH, batch, "fall_back", str(batch.batch_id)))
    batch.fell_back_reason = event.reason


def _task_requeued(state: RunState, event: TaskRequeued, at: str | None) -> None:
    state._require_active(event.TYPE)
    state._batch(event.batch_id, event.TYPE)
    task = state._task(event.task_id, event.TYPE)
    _transit((TASK, task, "requeue", task.task_id))
    task.batch_id = event.batch_id


def _worktree_removed(state: RunState, event: WorktreeRemoved, at: str | None) -> None:
    task = state._task(event.task_id, event.TYPE)
    # An older attempt's worktree, or one left behind by an interrupted or requeued task.
    # A task that changed nothing keeps saying so: it has no work, landed or kept.
    if event.worktree_id != task.worktree_id or task.status in ("requested", "no_change"):
        return
    _transit((TASK, task, "remove", task.task_id))


def _work_kept(state: RunState, event: WorkKept, at: str | None) -> None:
    task = state._task(event.task_id, event.TYPE)
    task.kept_branch = event.branch


def _stop_requested(state: RunState, event: StopRequested, at: str | None) -> None:
    _transit_run(state, "request_stop")
    state.stop_reason = event.reason


def _run_completed(state: RunState, event: RunCompleted, at: str | None) -> None:
    _transit_run(state, "complete")
    state.landed_commit, state.landed_on = event.landed_commit, event.landed_on
    state.land_command, state.ended_at = event.land_command, at


def _run_failed(state: RunState, event: RunFailed, at: str | None) -> None:
    _transit_run(state, "fail", *state._in_flight())
    state.error, state.ended_at = event.error, at


def _run_stopped(state: RunState, event: RunStopped, at: str | None) -> None:
    _transit_run(state, "stop", *state._in_flight())
    state.stop_reason = event.reason or state.stop_reason
    state.ended_at = at


def _run_resumed(state: RunState, event: RunResumed, at: str | None) -> None:
    _transit_run(state, "resume", *state._in_flight())
    state.resumes += 1
    state.ended_at, state.error, state.stop_reason = None, None, None


def _dispatch(state: RunState, event: RunEvent, at: str | None) -> None:
    match event:
        case RunCreated():
            _run_created(state, event, at)
        case ExecutionModeSelected():
            _mode_selected(state, event, at)
        case BaselineTested():
            _baseline_tested(state, event, at)
        case BatchStarted():
            _batch_started(state, event, at)
        case WorktreeCreated():
            _worktree_created(state, event, at)
        case TaskStarted():
            _task_started(state, event, at)
        case TaskOutput():
            _task_output(state, event, at)
        case TaskSucceeded():
            _task_succeeded(state, event, at)
        case AgentReported():
            _agent_reported(state, event, at)
        case TaskChangedNothing():
            _task_changed_nothing(state, event, at)
        case TaskFailed():
            _task_failed(state, event, at)
        case TaskInterrupted():
            _task_interrupted(state, event, at)
        case MergeStarted():
            _merge_started(state, event, at)
        case BranchMerged():
            _branch_merged(state, event, at)
        case MergeConflicted():
            _merge_conflicted(state, event, at)
        case ConflictResolutionStarted():
            _resolution_started(state, event, at)
        case ConflictResolved():
            _conflict_resolved(state, event, at)
        case ConflictResolutionFailed():
            _resolution_failed(state, event, at)
        case TestsPassed() | TestsFailed():
            _tests_ran(state, event, at)
        case TestsFlaky():
            _tests_flaky(state, event, at)
        case CulpritFound():
            _culprit_found(state, event, at)
        case BatchLanded():
            _batch_landed(state, event, at)
        case BatchCompleted():
            _batch_completed(state, event, at)
        case BatchFailed():
            _batch_failed(state, event, at)
        case FellBackToSequential():
            _fell_back(state, event, at)
        case TaskRequeued():
            _task_requeued(state, event, at)
        case WorktreeRemoved():
            _worktree_removed(state, event, at)
        case WorkKept():
            _work_kept(state, event, at)
        case StopRequested():
            _stop_requested(state, event, at)
        case RunCompleted():
            _run_completed(state, event, at)
        case RunFailed():
            _run_failed(state, event, at)
        case RunStopped():
            _run_stopped(state, event, at)
        case RunResumed():
            _run_resumed(state, event, at)
        case _:
            raise TypeError(f"no fold for run-stream event {event.TYPE}")


# --- functional entry points -------------------------------------------------------------

Recorded = DomainEvent | tuple[DomainEvent, str | None]


def initial_state() -> RunState:
    return RunState()


def apply(state: RunState, event: DomainEvent, recorded_at: str | None = None) -> RunState:
    return state.apply(event, recorded_at)


def replay(events: Iterable[Recorded]) -> RunState:
    """Fold a whole run stream; items are events or (event, recorded_at) pairs."""
    state = RunState()
    for item in events:
        event, recorded_at = item if isinstance(item, tuple) else (item, None)
        state.apply(event, recorded_at)
    return state
