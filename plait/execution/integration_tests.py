"""Runs the project's tests on an exact merged commit, in the run's detached integration
worktree (never the user's checkout)."""

from __future__ import annotations

import asyncio
import os
import uuid
from dataclasses import dataclass
from pathlib import Path

from plait.domain.failures import failing_tests
from plait.execution.context import RunContext
from plait.execution.processes import ProcessResult, start_process, task_env
from plait.execution.worktrees import Worktree

# How much of a red run's log is read for the names of the failing tests: the runners print
# their summaries last.
SUMMARY_BYTES = 256 * 1024


@dataclass(frozen=True)
class TestRun:
    commit: str
    passed: bool
    exit_code: int | None
    duration: float
    output_tail: str
    log_path: str = ""
    failing_tests: tuple[str, ...] = ()
    __test__ = False  # not a pytest test class


class IntegrationTester:
    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx
        self._worktree: Worktree | None = None
        self._runs = 0

    @property
    def command(self) -> str | None:
        return self.ctx.plan.test_command

    async def run(self, commit: str) -> TestRun | None:
        """The test command's verdict on `commit`; None if the run was stopped meanwhile."""
        assert self.command is not None
        worktree = await self._checkout(commit)
        self._runs += 1
        # Unique across processes: a resumed run's tester counts from 1 again.
        log_path = self.ctx.log_dir / f"tests.{commit[:12]}.{uuid.uuid4().hex[:8]}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        env = task_env(
            os.environ, {"PLAIT_RUN_ID": self.ctx.run_id, "PLAIT_WORKTREE": str(worktree.path)}
        )
        handle = await start_process(
            shell_command=self.command,
            cwd=worktree.path,
            env=env,
            timeout=self.ctx.plan.test_timeout or self.ctx.settings.test_timeout,
            log_path=log_path,
            grace=self.ctx.settings.stop_grace,
        )
        waiter = asyncio.ensure_future(handle.wait())
        stopper = asyncio.ensure_future(self.ctx.stop.wait())
        await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
        if not waiter.done():
            waiter.cancel()
            await handle.terminate(self.ctx.settings.stop_grace)
            return None
        result: ProcessResult = waiter.result()
        tail = result.output_tail[-3000:]
        if result.timed_out:
            tail += f"\n[plait: the test command timed out after {result.duration:.0f} s]"
        passed = result.exit_code == 0
        failing = () if passed else tuple(failing_tests(_summary(log_path) or tail))
        return TestRun(
            commit, passed, result.exit_code, result.duration, tail, str(log_path), failing
        )

    async def _checkout(self, commit: str) -> Worktree:
        if self._worktree is None:
            path = await self.ctx.worktrees.integration_path(self.ctx.run_id)
            if path.exists():  # left by an earlier process of this run
                entry = Worktree(path, None, path.name, commit)
                self._worktree = await self.ctx.worktrees.checkout_detached(entry, commit)
            else:
                self._worktree = await self.ctx.worktrees.create_detached(path, commit)
            self.ctx.live_worktrees[self._worktree.worktree_id] = self._worktree
        else:
            self._worktree = await self.ctx.worktrees.checkout_detached(self._worktree, commit)
        return self._worktree

    async def close(self) -> None:
        if self._worktree is not None:
            await self.ctx.worktrees.remove(self._worktree)
            self.ctx.live_worktrees.pop(self._worktree.worktree_id, None)
            self._worktree = None


def _summary(log_path: Path) -> str:
    """The end of a test run's log, where test runners print which tests failed."""
    try:
        with log_path.open("rb") as log:
            size = log.seek(0, os.SEEK_END)
            log.seek(max(0, size - SUMMARY_BYTES))
            return log.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
