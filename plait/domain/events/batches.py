"""A batch's events: start, merge, tests, culprits, landing and its end."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from plait.domain.events.base import RunEvent


@dataclass(frozen=True, kw_only=True)
class BatchStarted(RunEvent):
    batch_id: int
    task_ids: Sequence[str]
    can_parallel: bool


@dataclass(frozen=True, kw_only=True)
class MergeStarted(RunEvent):
    batch_id: int
    onto: str


@dataclass(frozen=True, kw_only=True)
class TestsPassed(RunEvent):
    batch_id: int
    commit: str
    command: str
    exit_code: int | None
    duration: float
    output_tail: str = ""
    setup: str = ""  # "ran" or "reused" (the integration worktree's setups), "" without any
    log_path: str = ""  # the whole output, where the driving process kept it


@dataclass(frozen=True, kw_only=True)
class TestsFailed(RunEvent):
    """Red: the tests failed, timed out (`timed_out`, whatever the exit status), or could
    not run at all (`problem`: a setup failed, the command was not found)."""

    batch_id: int
    commit: str
    command: str
    exit_code: int | None
    duration: float
    output_tail: str = ""
    timed_out: bool = False
    # The failing test ids of the JUnit report (at most MAX_TEST_IDS of them) and how many
    # there were; failed_count is None when there was no report.
    failed_tests: Sequence[str] = ()
    failed_count: int | None = None
    problem: str = ""
    setup: str = ""
    log_path: str = ""


@dataclass(frozen=True, kw_only=True)
class TestsFlaky(RunEvent):
    """Tests failed once on `commit` and passed on a re-run: reported, nobody blamed."""

    batch_id: int
    commit: str
    command: str
    output_tail: str = ""
    log_path: str = ""
    failed_tests: Sequence[str] = ()  # of the red run, from its JUnit report


@dataclass(frozen=True, kw_only=True)
class BatchLanded(RunEvent):
    """The integration ref moved from `before` to `after` (compare-and-swap)."""

    batch_id: int
    before: str
    after: str


@dataclass(frozen=True, kw_only=True)
class BatchCompleted(RunEvent):
    batch_id: int
    merge_status: str
    duration: float = 0.0


@dataclass(frozen=True, kw_only=True)
class BatchFailed(RunEvent):
    batch_id: int
    merge_status: str
    errors: Sequence[str] = ()
    duration: float = 0.0


@dataclass(frozen=True, kw_only=True)
class FellBackToSequential(RunEvent):
    """`batch_id` None: the whole run falls back; otherwise the listed tasks of one batch."""

    batch_id: int | None = None
    reason: str = ""
    task_ids: Sequence[str] = ()


@dataclass(frozen=True, kw_only=True)
class BranchMerged(RunEvent):
    batch_id: int
    task_id: str
    worktree_id: str
    merge_commit: str


@dataclass(frozen=True, kw_only=True)
class MergeConflicted(RunEvent):
    batch_id: int
    task_id: str
    worktree_id: str
    files: Sequence[str] = ()


@dataclass(frozen=True, kw_only=True)
class CulpritFound(RunEvent):
    """Bisecting the merge chain blamed this task's branch; it is ejected from the batch."""

    batch_id: int
    task_id: str
    output_tail: str = ""
    # The tests that fail with this branch and did not without it (from JUnit reports).
    broke_tests: Sequence[str] = ()
