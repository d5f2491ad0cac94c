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

Statuses are the words of plait.domain.statuses. Which event fires which trigger is drawn
in plait.domain.lifecycles. Beyond the tables:

- ExecutionModeSelected starts a pending run; on a running run it only records the mode.
- Batch and task progress needs a running (or stopping) run. Worktrees are created and
  tasks started only in a running batch; branches merge or conflict only in a merging
  batch; a culprit is found only in a testing batch.
- TaskFailed with will_retry fires `fail` then `retry`: the task waits (`pending`) for
  its next attempt's worktree.
- BatchLanded lands every task of the batch that is merged on the tip it landed
  (`succeeded` with a merge commit): those are in the run's tested result.
- BatchFailed picks its end from merge_status: conflicts -> conflicted, test_failed ->
  test_failed, cancelled -> cancelled, anything else -> failed.
- RunCompleted ends the run `landed` when the base branch moved to the result, `succeeded`
  when the base already was the result, and `kept` when the result stays on the run's
  branch. Only a landed run has a `landed_commit`; every run has its `result_commit`, the
  tested tip of its result branch.
- RunStopped, RunFailed and RunResumed cancel every batch still in flight (running,
  merging, testing): after a stop or a crash nothing is in flight, and a resumed run
  restarts the batch with a new BatchStarted.
- TaskOutput is accepted in any state and ignored for an older worktree: output chunks may
  be appended after the task's end event, and a history must not become unreplayable
  because of a late log line.
- WorktreeRemoved changes no status; removing the current worktree twice is refused.
  WorkKept ends a conflicted task `kept`; of any other task it only records the branch.

Snapshots of version 1 (the words before plait.domain.statuses) are translated on load.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from plait.domain.describe import gist
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
    LandRequested,
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
    TaskSkipped,
    TaskStarted,
    TaskSucceeded,
    TestsFailed,
    TestsFlaky,
    TestsPassed,
    WorkKept,
    WorktreeCreated,
    WorktreeRemoved,
)
from plait.domain.failures import named_failures
from plait.domain.ids import result_branch
from plait.domain.lifecycles import BATCH, RUN, TASK, Lifecycle
from plait.domain.statuses import (
    ACTIVE_RUN,
    DRIVEN_RUN,
    IN_FLIGHT_BATCH,
    LANDABLE_RUN,
    RESUMABLE_RUN,
    RETRYABLE_TASK,
    SKIPPABLE_TASK,
    BatchStatus,
    RunStatus,
    TaskStatus,
)
from plait.domain.times import seconds_between

SNAPSHOT_VERSION = 2
OUTPUT_LINE_LIMIT = 500

# BatchFailed.merge_status -> batch trigger; any other status is a plain failure.
FAILURE_TRIGGERS = {
    "conflicts": "conflict",
    "conflicted": "conflict",
    "test_failed": "fail_tests",
    "tests_failed": "fail_tests",
    "cancelled": "cancel",
}


def land_command(run_id: str) -> str:
    """The command that lands a run's tested result (the CLI adds its `--db`)."""
    return f"plait land {run_id}"


@dataclass(slots=True)
class TestRunState:
    """One run of the test command on one commit of a batch."""

    commit: str
    passed: bool
    exit_code: int | None
    duration: float
    ended_at: str | None
    log_path: str = ""
    failing_tests: list[str] = field(default_factory=list)
    flaky: bool = False
    __test__ = False  # not a pytest test class


@dataclass(slots=True)
class BatchState:
    batch_id: int
    task_ids: list[str]
    can_parallel: bool
    status: BatchStatus = BATCH.initial
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
    merge_started_at: str | None = None
    landed_at: str | None = None
    test_runs: list[TestRunState] = field(default_factory=list)
    # Every conflict of the batch, in order: {"task_id", "files"}.
    conflicts: list[dict[str, Any]] = field(default_factory=list)


@dataclass(slots=True)
class AttemptState:
    """One attempt of a task: its own worktree, log and outcome."""

    attempt: int
    worktree_id: str
    base_commit: str
    status: TaskStatus = TaskStatus.PENDING
    resolution: bool = False  # an agent resolving a conflict, not a run of the task
    started_at: str | None = None
    ended_at: str | None = None
    duration: float | None = None
    log_path: str = ""
    exit_code: int | None = None
    error: str | None = None
    commit: str | None = None
    interrupted: bool = False


@dataclass(slots=True)
class TaskState:
    task_id: str
    batch_id: int | None
    status: TaskStatus = TASK.initial
    title: str = ""
    depends_on: list[str] = field(default_factory=list)
    attempt: int = 0
    worktree_id: str | None = None
    worktree_path: str | None = None
    worktree_removed: bool = False
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
    skip_reason: str | None = None
    will_retry: bool = False
    timed_out: bool = False
    broke_tests: list[str] = field(default_factory=list)  # as the culprit: what it broke
    kept_branch: str | None = None
    kept_ref: str | None = None  # refs/plait/kept/...: an attempt's work, committed by plait
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
    attempts: list[AttemptState] = field(default_factory=list)

    def started_attempts(self) -> list[AttemptState]:
        """The attempts that ran (or run): each has its own log, and maybe a commit."""
        return [a for a in self.attempts if a.started_at is not None]

    def current_attempt(self) -> AttemptState | None:
        for attempt in reversed(self.attempts):
            if attempt.worktree_id == self.worktree_id:
                return attempt
        return None


Move = tuple[Lifecycle[Any], Any, str, str]


@dataclass
class RunState:
    run_id: str = ""
    project_id: str = ""
    status: RunStatus | None = None  # None until RunCreated
    mode: str | None = None
    reason: str = ""
    base_branch: str | None = None
    base_commit: str | None = None
    repo_path: str | None = None
    worktree_root: str = ""
    max_concurrency: int | None = None
    on_task_failure: str = "stop"
    has_tests: bool = False  # the plan has a test command: what lands has passed it
    created_at: str | None = None
    started_at: str | None = None
    ended_at: str | None = None
    baseline_passed: bool | None = None
    baseline_allowed: bool = False
    baseline_failing_tests: list[str] = field(default_factory=list)
    baseline_ended_at: str | None = None
    baseline_duration: float | None = None
    # Set when the baseline refused the run's configuration (see BaselineTested.problem).
    baseline_problem: str = ""
    stop_reason: str | None = None
    error: str | None = None
    resumes: int = 0
    # The tested tip of the run's result branch (None: nothing landed on it yet).
    result_commit: str | None = None
    # Set only when the base branch moved to the result (status landed).
    landed_commit: str | None = None
    landed_on: str | None = None
    not_landed_reason: str = ""
    land_requested: bool = False
    current_batch: int | None = None
    batches: dict[int, BatchState] = field(default_factory=dict)
    tasks: dict[str, TaskState] = field(default_factory=dict)

    # --- derived ----------------------------------------------------------------------

    @property
    def batches_total(self) -> int:
        return len(self.batches)

    @property
    def completed_batches(self) -> int:
        """Batches that are done and whose green work landed on the run's result, even if
        one of their tasks failed."""
        return sum(1 for batch in self.batches.values() if _batch_done(batch))

    @property
    def landable(self) -> bool:
        """A tested result that the base does not have yet, on a run that stopped: what
        `plait land` would land."""
        return (
            self.status in LANDABLE_RUN
            and self.result_commit is not None
            and self.result_commit != self.base_commit
        )

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
            "repo_path": self.repo_path,
            "base_branch": self.base_branch,
            "base_commit": self.base_commit,
            "result_branch": result_branch(self.run_id) if self.run_id else None,
            "result_commit": self.result_commit,
            "landed_commit": self.landed_commit,
            "landed_on": self.landed_on,
            "not_landed_reason": self.not_landed_reason,
            "landable": self.landable,
            "land_command": land_command(self.run_id) if self.landable else None,
            "on_task_failure": self.on_task_failure,
            "has_tests": self.has_tests,
            "max_concurrency": self.max_concurrency,
            "created_at": self.created_at,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "duration": seconds_between(self.started_at or self.created_at, self.ended_at),
            "stop_reason": self.stop_reason,
            "error": self.error,
            "resumes": self.resumes,
            "baseline_passed": self.baseline_passed,
            # What the run's agent sessions used, over every task and attempt.
            "tokens_in": sum(t.total_tokens_in for t in self.tasks.values()),
            "tokens_out": sum(t.total_tokens_out for t in self.tasks.values()),
            "cost_usd": round(sum(t.total_cost_usd for t in self.tasks.values()), 6),
            "outcome": self.outcome(),
            "landable_note": self.landable_note(),
            "actions": self.actions(),
            "batches": [dataclasses.asdict(b) for b in self._sorted_batches()],
            "tasks": [
                {**dataclasses.asdict(t), "note": task_note(self, t), "actions": self.actions(t)}
                for t in self.tasks.values()
            ],
        }

    def outcome(self) -> str:
        """How the run stands, in one line: what the CLI prints and the page's banner says.
        Only a run whose base moved says "Landed"."""
        base, result = self.base_branch or "the base", (self.result_commit or "")[:12]
        match self.status:
            case RunStatus.LANDED:
                return f"Landed {(self.landed_commit or '')[:12]} on {self.landed_on}."
            case RunStatus.SUCCEEDED:
                return f"Nothing to land: {base} already has every result."
            case RunStatus.KEPT:
                return (
                    f"Kept: the tested result {result} is on {result_branch(self.run_id)}, "
                    f"not on {base}: {self.not_landed_reason}."
                )
            case RunStatus.STOPPED:
                return f"Stopped: {self.stop_reason or 'stop requested'}."
            case RunStatus.FAILED:
                return f"Failed: {self.error or 'the run failed'}"
        return f"{str(self.status).capitalize()}: nothing has landed on {base} yet."

    def landable_note(self) -> str:
        """What `plait land` would land, when there is something: '' otherwise."""
        if not self.landable:
            return ""
        landed = sum(1 for t in self.tasks.values() if t.status == TaskStatus.LANDED)
        work = "tested work" if self.has_tests else "work (the plan has no test command)"
        return (
            f"The {work} of {landed} task(s) is on {result_branch(self.run_id)}; "
            f"{self.base_branch} did not move."
        )

    def actions(self, task: TaskState | None = None) -> list[str]:
        """What a user can do now with the run, or with one of its tasks: the buttons a
        page offers, the commands the CLI prints."""
        if task is None:
            found = ["stop"] if self.status in ACTIVE_RUN else []
            found += ["resume"] if self.status in RESUMABLE_RUN else []
            return found + (["land"] if self.landable else [])
        if self.status not in RESUMABLE_RUN:
            return []
        return [
            action
            for action, allowed in (("retry", RETRYABLE_TASK), ("skip", SKIPPABLE_TASK))
            if task.status in allowed
        ]

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
        if int(data.get("snapshot_version", 1)) < 2:
            data = _upcast_snapshot_v1(data)
        state = cls(**_known(cls, data, exclude=("batches", "tasks")))
        if state.status is not None:
            state.status = RunStatus(state.status)
        for raw in data.get("batches", ()):
            batch = BatchState(**_known(BatchState, raw, exclude=("test_runs",)))
            batch.status = BatchStatus(batch.status)
            batch.test_runs = [
                TestRunState(**_known(TestRunState, r)) for r in raw.get("test_runs", ())
            ]
            state.batches[batch.batch_id] = batch
        for raw in data.get("tasks", ()):
            task = TaskState(**_known(TaskState, raw, exclude=("attempts",)))
            task.status = TaskStatus(task.status)
            task.attempts = [_attempt(a) for a in raw.get("attempts", ())]
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

    def _run_status(self) -> RunStatus:
        assert self.status is not None, "_check_stream lets only RunCreated through"
        return self.status

    def _require_active(self, trigger: str) -> None:
        if self.status not in DRIVEN_RUN:
            raise InvalidTransition(self._name, str(self.status), trigger)

    def _batch(
        self, batch_id: int, trigger: str, *, in_status: BatchStatus | None = None
    ) -> BatchState:
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


def _batch_done(batch: BatchState) -> bool:
    if batch.status == BatchStatus.COMPLETED:
        return True
    ended = batch.status not in IN_FLIGHT_BATCH and batch.status != BatchStatus.PENDING
    return ended and batch.landed_after is not None and batch.status != BatchStatus.CANCELLED


def task_note(state: RunState, task: TaskState) -> str:
    """One line on why a task is in its status, for every view of it."""
    status = task.status
    kept = f"; its work is kept on {task.kept_branch}" if task.kept_branch else ""
    if task.kept_ref:
        kept = f"; its work is kept at {task.kept_ref}"
    if status == TaskStatus.SKIPPED:
        return task.skip_reason or "skipped"
    if status == TaskStatus.EJECTED:
        failing = f" ({', '.join(task.broke_tests[:5])})" if task.broke_tests else ""
        return f"its branch broke the tests{failing}{kept}"
    if status in (TaskStatus.CONFLICTED, TaskStatus.KEPT) and task.conflict_files:
        return f"conflicts in {', '.join(task.conflict_files)}{kept}"
    if status in (TaskStatus.FAILED, TaskStatus.NO_CHANGE):
        return (gist(task.error) or str(status)) + kept
    if status == TaskStatus.RERUN:
        return "runs again on the new tip"
    if status == TaskStatus.PENDING and state.status in (RunStatus.FAILED, RunStatus.STOPPED):
        why = gist(state.error if state.status == RunStatus.FAILED else state.stop_reason)
        return f"not started: the run {state.status}" + (f" ({why})" if why else "")
    if status == TaskStatus.LANDED and state.status == RunStatus.LANDED:
        return f"on {state.landed_on}"
    if status == TaskStatus.LANDED:
        tested = ", tested" if state.has_tests else " (the plan has no test command)"
        return f"on {result_branch(state.run_id)}{tested}"
    return ""


def _attempt(raw: Mapping[str, Any]) -> AttemptState:
    attempt = AttemptState(**_known(AttemptState, raw))
    attempt.status = TaskStatus(attempt.status)
    return attempt


# Version 1 snapshots said requested/created for waiting, merged for merged, removed for
# landed, completed for any finished run, and kept the last landing as landed_commit.
_V1_TASK = {"requested": "pending", "created": "pending", "removed": "landed"}


def _upcast_snapshot_v1(data: Mapping[str, Any]) -> dict[str, Any]:
    run = dict(data)
    landed_batches = {
        int(b["batch_id"])
        for b in run.get("batches", ())
        if b.get("landed_after") and b.get("status") not in ("running", "merging", "testing")
    }
    tasks = []
    for raw in run.get("tasks", ()):
        task = dict(raw)
        status = str(task.get("status"))
        if status == "merged":
            status = "landed" if task.get("batch_id") in landed_batches else "succeeded"
        task["status"] = _V1_TASK.get(status, status)
        tasks.append(task)
    run["tasks"] = tasks
    run["result_commit"] = run.get("landed_commit")
    if run.get("status") == "created":
        run["status"] = "pending"
    elif run.get("status") == "completed":
        kept = run.get("landed_on") != run.get("base_branch")
        nothing = run.get("landed_commit") == run.get("base_commit")
        run["status"] = "kept" if kept else "succeeded" if nothing else "landed"
    if run.get("status") != "landed":
        run["landed_commit"] = None
        run["landed_on"] = None if run.get("status") != "succeeded" else run.get("landed_on")
    return run


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


def _chain(task: TaskState, triggers: Iterable[str]) -> None:
    """Several triggers in a row on one task."""
    status = task.status
    for trigger in triggers:
        status = TASK.next_state(status, trigger, task.task_id)
    task.status = status


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


def _end_attempt(task: TaskState, at: str | None, **facts: Any) -> None:
    attempt = task.current_attempt()
    if attempt is None:
        return
    attempt.status = task.status
    attempt.ended_at = at
    for name, value in facts.items():
        setattr(attempt, name, value)


# --- handlers: one per event type --------------------------------------------------------


def _run_created(state: RunState, event: RunCreated, at: str | None) -> None:
    if state.status is not None:
        raise InvalidTransition(state._name, state.status, event.TYPE)
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
    state.created_at = at
    for batch in batches:
        state.batches[batch.batch_id] = batch
        for task_id in batch.task_ids:
            raw = planned.get(task_id, {})
            state.tasks[task_id] = TaskState(
                task_id=task_id,
                batch_id=batch.batch_id,
                title=str(raw.get("title") or ""),
                depends_on=[str(d) for d in raw.get("depends_on") or ()],
            )


def _planned_batch(raw: Mapping[str, Any]) -> BatchState:
    return BatchState(
        batch_id=int(raw["batch_id"]),
        task_ids=[str(task_id) for task_id in raw.get("task_ids", ())],
        can_parallel=bool(raw.get("can_parallel", False)),
    )


def _mode_selected(state: RunState, event: ExecutionModeSelected, at: str | None) -> None:
    if state.status == RunStatus.PENDING:
        _transit_run(state, "start")
        state.started_at = at
    elif state.status != RunStatus.RUNNING:
        raise InvalidTransition(state._name, state._run_status(), event.TYPE)
    state.mode, state.reason = event.mode, event.reason


def _baseline_tested(state: RunState, event: BaselineTested, at: str | None) -> None:
    state._require_active(event.TYPE)
    state.baseline_passed, state.baseline_allowed = event.passed, event.allowed
    state.baseline_failing_tests = named_failures(event.failed_tests, event.output_tail)
    state.baseline_ended_at, state.baseline_duration = at, event.duration
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


# What a fresh worktree keeps of the task: who it is, and what all its attempts add up to.
_KEPT_ACROSS_ATTEMPTS = (
    "task_id", "status", "title", "depends_on", "kept_branch", "kept_ref", "attempts",
    "total_tokens_in", "total_tokens_out", "total_cost_usd",
)  # fmt: skip


def _worktree_created(state: RunState, event: WorktreeCreated, at: str | None) -> None:
    state._require_active(event.TYPE)
    state._batch(event.batch_id, event.TYPE, in_status=BatchStatus.RUNNING)
    task = state._task(event.task_id, event.TYPE)
    _transit((TASK, task, "provision", task.task_id))
    # A fresh worktree is a fresh attempt: nothing of the previous one still describes it.
    fresh = TaskState(
        batch_id=event.batch_id, **{name: getattr(task, name) for name in _KEPT_ACROSS_ATTEMPTS}
    )
    for spec in dataclasses.fields(TaskState):
        setattr(task, spec.name, getattr(fresh, spec.name))
    task.attempt, task.worktree_id = event.attempt, event.worktree_id
    task.worktree_path, task.branch, task.base_commit = event.path, event.branch, event.base_commit
    task.attempts.append(AttemptState(event.attempt, event.worktree_id, event.base_commit))


def _task_started(state: RunState, event: TaskStarted, at: str | None) -> None:
    state._require_active(event.TYPE)
    state._batch(event.batch_id, event.TYPE, in_status=BatchStatus.RUNNING)
    task = state._task(event.task_id, event.TYPE)
    if task.worktree_id != event.worktree_id:
        raise InvalidTransition(
            f"task {task.task_id}", task.status, f"start in {event.worktree_id}"
        )
    _transit((TASK, task, "start", task.task_id))
    task.command, task.started_at = list(event.command), at
    task.agent, task.agent_version, task.model = event.agent, event.agent_version, event.model
    attempt = task.current_attempt()
    if attempt is not None:
        attempt.status, attempt.started_at, attempt.log_path = task.status, at, event.log_path


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
    _end_attempt(task, at, duration=event.duration, exit_code=0, error=task.error)


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
    _end_attempt(task, at, duration=event.duration, exit_code=0, commit=event.commit)


def _task_failed(state: RunState, event: TaskFailed, at: str | None) -> None:
    state._require_active(event.TYPE)
    task = state._task(event.task_id, event.TYPE)
    # A failure that will be retried goes on to wait for its next attempt's worktree.
    _chain(task, ("fail", "retry") if event.will_retry else ("fail",))
    task.exit_code, task.error, task.will_retry = event.exit_code, event.error, event.will_retry
    task.duration, task.ended_at, task.timed_out = event.duration, at, event.timed_out
    _end_attempt(task, at, duration=event.duration, exit_code=event.exit_code, error=event.error)
    attempt = task.current_attempt()
    if attempt is not None:
        attempt.status = TaskStatus.FAILED


def _task_interrupted(state: RunState, event: TaskInterrupted, at: str | None) -> None:
    state._require_active(event.TYPE)
    task = state._task(event.task_id, event.TYPE)
    _transit((TASK, task, "interrupt", task.task_id))
    task.error = f"interrupted: {event.reason}" if event.reason else "interrupted"
    task.ended_at = at
    _end_attempt(task, at, interrupted=True, error=task.error)


def _merge_started(state: RunState, event: MergeStarted, at: str | None) -> None:
    state._require_active(event.TYPE)
    batch = state._batch(event.batch_id, event.TYPE)
    _transit((BATCH, batch, "merge", str(batch.batch_id)))
    batch.onto = event.onto
    batch.merge_started_at = batch.merge_started_at or at


def _branch_merged(state: RunState, event: BranchMerged, at: str | None) -> None:
    state._require_active(event.TYPE)
    state._batch(event.batch_id, event.TYPE, in_status=BatchStatus.MERGING)
    task = state._task(event.task_id, event.TYPE)
    _transit((TASK, task, "merge", task.task_id))
    task.merge_commit = event.merge_commit


def _merge_conflicted(state: RunState, event: MergeConflicted, at: str | None) -> None:
    state._require_active(event.TYPE)
    batch = state._batch(event.batch_id, event.TYPE, in_status=BatchStatus.MERGING)
    task = state._task(event.task_id, event.TYPE)
    _transit((TASK, task, "conflict", task.task_id))
    task.conflict_files, task.merge_commit = list(event.files), None
    batch.conflicts.append({"task_id": task.task_id, "files": list(event.files)})


def _resolution_started(state: RunState, event: ConflictResolutionStarted, at: str | None) -> None:
    state._require_active(event.TYPE)
    task = state._task(event.task_id, event.TYPE)
    _transit((TASK, task, "resolve", task.task_id))
    task.conflict_files, task.started_at = list(event.files), at
    attempt = task.current_attempt()
    if attempt is not None:
        attempt.status, attempt.resolution = task.status, True
        attempt.started_at, attempt.log_path = at, event.log_path


def _conflict_resolved(state: RunState, event: ConflictResolved, at: str | None) -> None:
    state._require_active(event.TYPE)
    task = state._task(event.task_id, event.TYPE)
    _transit((TASK, task, "resolved", task.task_id))
    task.commit, task.changed_files = event.commit, list(task.conflict_files)
    task.duration, task.ended_at, task.error = event.duration, at, None
    _end_attempt(task, at, duration=event.duration, commit=event.commit)


def _resolution_failed(state: RunState, event: ConflictResolutionFailed, at: str | None) -> None:
    state._require_active(event.TYPE)
    task = state._task(event.task_id, event.TYPE)
    _transit((TASK, task, "give_up", task.task_id))
    task.error, task.ended_at = f"could not resolve the conflict: {event.reason}", at
    _end_attempt(task, at, error=task.error)
    attempt = task.current_attempt()
    if attempt is not None:
        attempt.status = TaskStatus.FAILED


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
    batch.test_runs.append(_test_run(event, at))


def _tests_flaky(state: RunState, event: TestsFlaky, at: str | None) -> None:
    state._require_active(event.TYPE)
    batch = state._batch(event.batch_id, event.TYPE)
    _transit((BATCH, batch, "test", str(batch.batch_id)))
    batch.flaky, batch.test_output_tail = True, event.output_tail
    batch.test_runs.append(_test_run(event, at))


def _culprit_found(state: RunState, event: CulpritFound, at: str | None) -> None:
    state._require_active(event.TYPE)
    batch = state._batch(event.batch_id, event.TYPE, in_status=BatchStatus.TESTING)
    task = state._task(event.task_id, event.TYPE)
    _transit((TASK, task, "eject", task.task_id))
    batch.culprits.append(task.task_id)
    # Without a JUnit report, the failing tests its red run's output names.
    task.broke_tests = named_failures(event.broke_tests, event.output_tail)
    broke = f" (it broke {', '.join(event.broke_tests)})" if event.broke_tests else ""
    task.error = f"ejected: the merged tests failed with this branch{broke}"
    task.merge_commit = None


def _batch_landed(state: RunState, event: BatchLanded, at: str | None) -> None:
    state._require_active(event.TYPE)
    batch = state._batch(event.batch_id, event.TYPE)
    merged = [
        state.tasks[task_id]
        for task_id in batch.task_ids
        if task_id in state.tasks
        and state.tasks[task_id].status == TaskStatus.SUCCEEDED
        and state.tasks[task_id].merge_commit is not None
    ]
    _transit(
        (BATCH, batch, "land", str(batch.batch_id)),
        *((TASK, task, "land", task.task_id) for task in merged),
    )
    batch.landed_before, batch.landed_after = event.before, event.after
    batch.landed_at = at
    state.result_commit = event.after


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
    task.batch_id, task.skip_reason = event.batch_id, None


def _task_skipped(state: RunState, event: TaskSkipped, at: str | None) -> None:
    state._require_active(event.TYPE)
    task = state._task(event.task_id, event.TYPE)
    _transit((TASK, task, "skip", task.task_id))
    task.skip_reason, task.ended_at = event.reason, at


def _worktree_removed(state: RunState, event: WorktreeRemoved, at: str | None) -> None:
    task = state._task(event.task_id, event.TYPE)
    if event.worktree_id != task.worktree_id:
        return  # an older attempt's worktree
    if task.worktree_removed:
        raise InvalidTransition(f"task {task.task_id}", "its worktree removed", event.TYPE)
    task.worktree_removed = True


def _work_kept(state: RunState, event: WorkKept, at: str | None) -> None:
    task = state._task(event.task_id, event.TYPE)
    if task.status == TaskStatus.CONFLICTED:
        _transit((TASK, task, "keep", task.task_id))
    if event.branch:
        task.kept_branch = event.branch
    if event.ref:
        task.kept_ref = event.ref


def _stop_requested(state: RunState, event: StopRequested, at: str | None) -> None:
    _transit_run(state, "request_stop")
    state.stop_reason = event.reason


def _run_completed(state: RunState, event: RunCompleted, at: str | None) -> None:
    on_base = event.landed_on == state.base_branch
    if not on_base:
        trigger = "keep"
    elif event.landed_commit == state.base_commit:
        trigger = "succeed"
    else:
        trigger = "land"
    _transit_run(state, trigger)
    state.result_commit, state.ended_at = event.landed_commit, at
    state.landed_on = event.landed_on if on_base else None
    state.landed_commit = event.landed_commit if trigger == "land" else None
    # Older runs recorded a git command instead of the reason.
    state.not_landed_reason = (
        "" if on_base else (event.not_landed_reason or event.land_command or "")
    )


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
    state.land_requested, state.not_landed_reason = False, ""


def _land_requested(state: RunState, event: LandRequested, at: str | None) -> None:
    state._require_active(event.TYPE)
    state.land_requested = True


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
        case TaskSkipped():
            _task_skipped(state, event, at)
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
        case LandRequested():
            _land_requested(state, event, at)
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
