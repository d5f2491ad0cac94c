"""The parts of a run's state: its batches, its tasks, their attempts and test runs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from plait.domain.lifecycles import BATCH, TASK
from plait.domain.statuses import (
    BatchStatus,
    TaskStatus,
)

SNAPSHOT_VERSION = 2
# The batch id a `schedule: ready` run's task has until a merge round takes it in: a task
# runs as soon as its dependencies landed, in no batch (rounds are numbered from 1).
READY_QUEUE = 0
OUTPUT_LINE_LIMIT = 500


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
