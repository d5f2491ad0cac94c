"""A task's events: worktrees, attempts, output, conflict resolution, requeues, kept work."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from plait.domain.events.base import RunEvent


@dataclass(frozen=True, kw_only=True)
class WorktreeCreated(RunEvent):
    batch_id: int
    task_id: str
    worktree_id: str
    attempt: int
    path: str
    branch: str
    base_commit: str


@dataclass(frozen=True, kw_only=True)
class TaskStarted(RunEvent):
    batch_id: int
    task_id: str
    worktree_id: str
    attempt: int
    command: Sequence[str]
    agent: str = ""  # the preset ("" for the shell or a custom template)
    agent_version: str = ""  # as the CLI reported it before the run
    profile: str = ""
    model: str = ""
    log_path: str = ""  # the attempt's whole output, where the driving process keeps it


@dataclass(frozen=True, kw_only=True)
class AgentReported(RunEvent):
    """What the agent CLI said of its own session, from its structured output: its verdict
    (an error even when it exited 0), its model, session, tokens and cost."""

    batch_id: int
    task_id: str
    worktree_id: str
    attempt: int
    agent: str
    model: str = ""
    session_id: str = ""
    tokens_in: int | None = None
    tokens_out: int | None = None
    cost_usd: float | None = None  # where the CLI reports it
    error: str = ""  # the CLI's own reason, when it reports a failure


@dataclass(frozen=True, kw_only=True)
class TaskChangedNothing(RunEvent):
    """The task exited 0 without changing a file, where the plan does not allow that (see
    `allow_no_change`; an allowed one is a TaskSucceeded without a commit). Not merged,
    not retried: an agent that did nothing did not do its job."""

    batch_id: int
    task_id: str
    worktree_id: str
    attempt: int
    duration: float = 0.0


@dataclass(frozen=True, kw_only=True)
class TaskOutput(RunEvent):
    """One bounded chunk of a task's output."""

    batch_id: int
    task_id: str
    worktree_id: str
    attempt: int
    stream: Literal["stdout", "stderr"]
    text: str


@dataclass(frozen=True, kw_only=True)
class TaskSucceeded(RunEvent):
    batch_id: int
    task_id: str
    worktree_id: str
    attempt: int
    commit: str | None
    changed_files: Sequence[str] = ()
    duration: float = 0.0


@dataclass(frozen=True, kw_only=True)
class TaskFailed(RunEvent):
    batch_id: int
    task_id: str
    worktree_id: str
    attempt: int
    exit_code: int | None
    error: str
    will_retry: bool = False
    duration: float = 0.0
    timed_out: bool = False  # plait stopped it: a failure whatever it exited with


@dataclass(frozen=True, kw_only=True)
class TaskInterrupted(RunEvent):
    """The task's process was stopped (stop or crash); it is re-run on resume."""

    batch_id: int
    task_id: str
    worktree_id: str
    attempt: int
    reason: str = ""


@dataclass(frozen=True, kw_only=True)
class ConflictResolutionStarted(RunEvent):
    """The task's own agent resolves its conflict with the new tip: the merge is checked out
    in `worktree_id` with the markers in `files`; `session_id` is resumed where the CLI can."""

    batch_id: int
    task_id: str
    worktree_id: str
    attempt: int
    onto: str
    files: Sequence[str] = ()
    session_id: str = ""  # "" : a new session
    log_path: str = ""


@dataclass(frozen=True, kw_only=True)
class ConflictResolved(RunEvent):
    """The agent's resolution, committed as a merge of the task's branch and the tip."""

    batch_id: int
    task_id: str
    worktree_id: str
    attempt: int
    commit: str
    duration: float = 0.0


@dataclass(frozen=True, kw_only=True)
class ConflictResolutionFailed(RunEvent):
    """The agent could not resolve the conflict; the task is re-run on the new tip."""

    batch_id: int
    task_id: str
    worktree_id: str
    attempt: int
    reason: str


@dataclass(frozen=True, kw_only=True)
class TaskRequeued(RunEvent):
    """A task queued to run again: a conflicted one on the new integration tip, a failed
    one when its run resumes, any unlanded one a user retries."""

    batch_id: int
    task_id: str
    reason: str = ""


@dataclass(frozen=True, kw_only=True)
class TaskSkipped(RunEvent):
    """The task will not run in this run: a task it depends on did not land, a user
    skipped it, or the run was landed without it."""

    task_id: str
    reason: str
    batch_id: int | None = None


@dataclass(frozen=True, kw_only=True)
class WorktreeRemoved(RunEvent):
    task_id: str
    worktree_id: str
    batch_id: int | None = None


@dataclass(frozen=True, kw_only=True)
class WorkKept(RunEvent):
    """Unlanded work left on `branch` for the user instead of being deleted. `ref` and
    `commit`: an attempt's work (what it left uncommitted, and commits it made that its
    result does not reach) committed to `refs/plait/kept/<run>/<task>/<attempt>`."""

    task_id: str
    branch: str
    reason: str = ""
    worktree_id: str | None = None
    batch_id: int | None = None
    attempt: int | None = None
    ref: str = ""
    commit: str = ""
