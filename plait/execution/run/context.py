"""Everything one run's execution needs, passed around as one object."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path

from plait.domain.plan.model import Plan
from plait.execution.git.cli import Git
from plait.execution.run.recorder import RunRecorder
from plait.execution.runners.agent_check import AgentInfo
from plait.execution.settings import Settings
from plait.execution.worktrees.manager import Worktree, WorktreeManager
from plait.execution.worktrees.pool import WorktreePool


@dataclass
class RunContext:
    run_id: str
    plan: Plan
    repo: Path
    git: Git
    worktrees: WorktreeManager
    recorder: RunRecorder
    settings: Settings
    result_ref: str  # refs/heads/plait/<run>/_result: the run's integration tip
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    # Every worktree this run created and has not removed, by worktree id.
    live_worktrees: dict[str, Worktree] = field(default_factory=dict)
    # Settings.reuse_worktrees (the default): task repositories come from (and go back to)
    # this pool.
    pool: WorktreePool | None = None
    # The agent CLIs the plan uses, by program, as checked when the run was launched.
    agents: dict[str, AgentInfo] = field(default_factory=dict)

    @property
    def log_dir(self) -> Path:
        return self.settings.log_root / self.run_id

    def attempt_log(self, task_id: str, attempt: int) -> Path:
        """Where an attempt's whole output goes (its events keep a bounded part of it)."""
        return self.log_dir / f"{task_id}.{attempt}.log"

    @property
    def stopping(self) -> bool:
        return self.stop.is_set()
