"""The run's own events: creation, mode, baseline, stop, end and resume."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from plait.domain.events.base import RunEvent


@dataclass(frozen=True, kw_only=True)
class RunCreated(RunEvent):
    """The run's plan, fixed at creation. Each batch is {batch_id, task_ids, can_parallel}."""

    project_id: str
    plan: dict[str, Any]
    batches: Sequence[Mapping[str, Any]]
    base_branch: str
    base_commit: str
    repo_path: str
    max_concurrency: int = 3
    # This repository's worktree root for the run ("": a run of an older plait, whose
    # worktrees are in <git common dir>/plait-worktrees).
    worktree_root: str = ""


@dataclass(frozen=True, kw_only=True)
class ExecutionModeSelected(RunEvent):
    mode: str
    reason: str = ""
    schedule: str = "batch"  # the plan's `schedule`: batch, or ready (no batch barriers)


@dataclass(frozen=True, kw_only=True)
class BaselineTested(RunEvent):
    """The test command on the base commit, before any task ran."""

    command: str
    passed: bool
    exit_code: int | None
    output_tail: str = ""
    allowed: bool = False
    timed_out: bool = False
    failed_tests: Sequence[str] = ()
    failed_count: int | None = None
    # Why the baseline could not judge anything: the test command or a setup could not run,
    # or the tests read files of the user's checkout (`outside_reads`). The run is refused.
    problem: str = ""
    outside_reads: Sequence[str] = ()
    setup: str = ""
    duration: float = 0.0
    log_path: str = ""  # the whole output, where the driving process kept it


@dataclass(frozen=True, kw_only=True)
class StopRequested(RunEvent):
    reason: str = ""


@dataclass(frozen=True, kw_only=True)
class RunCompleted(RunEvent):
    """The run's tested result `landed_commit` is on `landed_on`: the base branch when the
    base moved (or already had it), else the run's result branch, kept there for
    `plait land` because of `not_landed_reason`."""

    landed_commit: str
    landed_on: str
    land_command: str | None = None
    not_landed_reason: str = ""


@dataclass(frozen=True, kw_only=True)
class RunFailed(RunEvent):
    error: str


@dataclass(frozen=True, kw_only=True)
class RunStopped(RunEvent):
    reason: str = ""


@dataclass(frozen=True, kw_only=True)
class RunResumed(RunEvent):
    reason: str = ""


@dataclass(frozen=True, kw_only=True)
class LandRequested(RunEvent):
    """`plait land`: run no more tasks; land the tested result with the run's own landing."""

    reason: str = ""
