"""RunState: the run aggregate's state, its derived views, snapshots and the fold's entry."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from plait.domain.describe import gist
from plait.domain.errors import InvalidTransition
from plait.domain.events import (
    DomainEvent,
    RunCreated,
    RunEvent,
)
from plait.domain.ids import result_branch
from plait.domain.lifecycles import BATCH, Lifecycle
from plait.domain.run.entities import (
    READY_QUEUE,
    SNAPSHOT_VERSION,
    BatchState,
    TaskState,
    TestRunState,
    land_command,
)
from plait.domain.run.registry import fold_for
from plait.domain.run.snapshots import known, restore_attempt, upcast_v1
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

Move = tuple[Lifecycle[Any], Any, str, str]


@dataclass
class RunState:
    run_id: str = ""
    project_id: str = ""
    status: RunStatus | None = None  # None until RunCreated
    mode: str | None = None
    reason: str = ""
    # batch: batch by batch; ready: each task as soon as its dependencies landed, and a
    # batch is a merge round (what finished meanwhile, merged and tested at once).
    schedule: str = "batch"
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
            "schedule": self.schedule,
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
            "batches": [dataclasses.asdict(b) for b in self.sorted_batches()],
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
        data["batches"] = [dataclasses.asdict(b) for b in self.sorted_batches()]
        data["tasks"] = [dataclasses.asdict(t) for t in self.tasks.values()]
        return data

    @classmethod
    def from_json_dict(cls, data: Mapping[str, Any]) -> RunState:
        """Restore a snapshot; keys this version does not know are ignored."""
        if int(data.get("snapshot_version", 1)) < 2:
            data = upcast_v1(data)
        state = cls(**known(cls, data, exclude=("batches", "tasks")))
        if state.status is not None:
            state.status = RunStatus(state.status)
        for raw in data.get("batches", ()):
            batch = BatchState(**known(BatchState, raw, exclude=("test_runs",)))
            batch.status = BatchStatus(batch.status)
            batch.test_runs = [
                TestRunState(**known(TestRunState, r)) for r in raw.get("test_runs", ())
            ]
            state.batches[batch.batch_id] = batch
        for raw in data.get("tasks", ()):
            task = TaskState(**known(TaskState, raw, exclude=("attempts",)))
            task.status = TaskStatus(task.status)
            task.attempts = [restore_attempt(a) for a in raw.get("attempts", ())]
            state.tasks[task.task_id] = task
        return state

    # --- the fold ---------------------------------------------------------------------

    def apply(self, event: DomainEvent, recorded_at: str | None = None) -> RunState:
        """Fold one run-stream event into this state (in place) and return the state."""
        if not isinstance(event, RunEvent):
            raise TypeError(f"{event.TYPE} is not a run-stream event")
        self._check_stream(event)
        fold_for(type(event))(self, event, recorded_at)
        return self

    def _check_stream(self, event: RunEvent) -> None:
        if self.status is None and not isinstance(event, RunCreated):
            raise InvalidTransition(f"run {event.run_id}", "absent", event.TYPE)
        if self.status is not None and event.run_id != self.run_id:
            raise InvalidTransition(self.name, self.status, f"{event.TYPE} of run {event.run_id}")

    @property
    def name(self) -> str:
        return f"run {self.run_id}"

    def sorted_batches(self) -> list[BatchState]:
        return [self.batches[key] for key in sorted(self.batches)]

    # --- lookups and guards (they raise before anything changes) ------------------------

    def run_status(self) -> RunStatus:
        assert self.status is not None, "_check_stream lets only RunCreated through"
        return self.status

    def require_active(self, trigger: str) -> None:
        if self.status not in DRIVEN_RUN:
            raise InvalidTransition(self.name, str(self.status), trigger)

    def batch_for(
        self, batch_id: int, trigger: str, *, in_status: BatchStatus | None = None
    ) -> BatchState:
        batch = self.batches.get(batch_id)
        if batch is None:
            raise InvalidTransition(f"batch {batch_id}", "absent", trigger)
        if in_status is not None and batch.status != in_status:
            raise InvalidTransition(f"batch {batch_id}", batch.status, trigger)
        return batch

    def home_for(
        self, batch_id: int, trigger: str, *, in_status: BatchStatus | None = None
    ) -> BatchState | None:
        """The batch a task's event names, checked as `batch_for` does; None for the ready
        queue of a `schedule: ready` run (a task that no merge round has taken in yet)."""
        if batch_id == READY_QUEUE and self.schedule == "ready":
            return None
        return self.batch_for(batch_id, trigger, in_status=in_status)

    def task_for(self, task_id: str, trigger: str) -> TaskState:
        task = self.tasks.get(task_id)
        if task is None:
            raise InvalidTransition(f"task {task_id}", "absent", trigger)
        return task

    def in_flight(self) -> list[Move]:
        return [
            (BATCH, batch, "cancel", str(batch.batch_id))
            for batch in self.sorted_batches()
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
