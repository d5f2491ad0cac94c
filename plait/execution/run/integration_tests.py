"""Runs the project's tests on an exact merged commit, in the run's detached integration
worktree (never the user's checkout), in an environment of its own:

- the worktree holds exactly the commit's tree: whatever an earlier run left (bytecode,
  `.pytest_cache`, build output) is deleted, except the plan's `keep_ignored` setup
  outputs, which lose their caches (see clean_tree);
- it is prepared as a task worktree is: `copy_ignored`, then `setup_command`, then
  `test_setup_command`; a setup is skipped while the `setup_inputs` it depends on are
  unchanged and its kept outputs are there, so its cost does not grow with the batches;
- setups and tests run without the user's virtualenv (preparation_env);
- a run plait had to stop (its timeout) has failed, whatever it exits with; a command that
  cannot run (exit 126 or 127) or a setup that fails is a `problem`: the tests did not run,
  which is never a pass nor "as red as before";
- pytest is asked for a JUnit report (PYTEST_ADDOPTS), or the plan names the report its
  runner writes (`junit_report`), so a red verdict says which tests failed.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shlex
import uuid
from pathlib import Path

from plait.domain.plan.paths import path_parts
from plait.domain.verdicts import TestRun
from plait.execution.run.checkout_watch import CheckoutWatch, outside_read_problem
from plait.execution.run.context import RunContext
from plait.execution.run.junit import read_report
from plait.execution.run.task_process import exit_text
from plait.execution.runners.processes import (
    ProcessResult,
    preparation_env,
    start_process,
    task_env,
)
from plait.execution.worktrees.manager import Worktree, WorktreeError

# What /bin/sh exits with for a command it cannot run.
CANNOT_RUN = {126: "not executable", 127: "not found"}
TAIL_CHARS = 3000


class IntegrationTester:
    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx
        self._worktree: Worktree | None = None
        self._runs = 0
        # Its log files' names are this tester's own: a resumed run's tester counts from 1
        # again, and must not write into an earlier one's logs.
        self._tag = uuid.uuid4().hex[:8]
        # Setup step -> the key of the inputs it last succeeded with in this worktree.
        self._setup_keys: dict[str, str] = {}
        # The latest verdict on each commit tested by this process.
        self.verdicts: dict[str, TestRun] = {}

    @property
    def command(self) -> str | None:
        return self.ctx.plan.test_command

    async def run(self, commit: str, *, watch_checkout: bool = False) -> TestRun | None:
        """The test command's verdict on `commit`; None if the run was stopped meanwhile.

        With `watch_checkout`, files of the user's checkout that the tests open are reported
        (`outside_reads`) and make the verdict a `problem` (see checkout_watch).
        """
        assert self.command is not None
        worktree = await self._checkout(commit)
        self._runs += 1
        env = preparation_env(
            task_env(
                os.environ, {"PLAIT_RUN_ID": self.ctx.run_id, "PLAIT_WORKTREE": str(worktree.path)}
            )
        )
        notes = await self._copy_ignored(worktree)
        prepared = await self._setups(commit, worktree, env)
        if prepared is None:
            return None
        setup, failed_setup = prepared
        if failed_setup is not None:
            self.verdicts[commit] = failed_setup
            return failed_setup
        verdict = await self._test(commit, worktree, env, setup, notes, watch_checkout)
        if verdict is not None:
            self.verdicts[commit] = verdict
        return verdict

    async def _test(
        self,
        commit: str,
        worktree: Worktree,
        env: dict[str, str],
        setup: str,
        notes: list[str],
        watch_checkout: bool,
    ) -> TestRun | None:
        assert self.command is not None
        report = self._report_path(worktree)
        report.unlink(missing_ok=True)  # a report left from before must not be read as this one's
        test_env = dict(env)
        if self.ctx.plan.junit_report is None:
            # Any pytest the command runs writes its report where plait reads it; other
            # runners ignore the variable.
            extra = f"--junitxml={shlex.quote(str(report))}"
            test_env["PYTEST_ADDOPTS"] = f"{env.get('PYTEST_ADDOPTS', '')} {extra}".strip()
        watch = await self._watch() if watch_checkout else None
        if watch_checkout:
            notes += _watch_notes(watch)
        try:
            log = f"tests.{self._tag}.{self._runs}.log"
            result = await self._process(self.command, worktree, test_env, log)
        finally:
            opened = watch.stop() if watch is not None else []
        if result is None:
            return None
        tail = result.output_tail[-TAIL_CHARS:]
        if result.timed_out:
            tail += f"\n[plait: the test command timed out after {result.duration:.0f} s]"
        problem = ""
        if result.exit_code in CANNOT_RUN and not result.killed:
            problem = (
                f"the test command could not run (exit {result.exit_code}: "
                f"{CANNOT_RUN[result.exit_code]}): {_last_lines(result)}"
            )
            problem += _venv_hint()
        if opened:
            problem = outside_read_problem(opened, self.ctx.repo, test_env, self.command)
        read = read_report(report)
        notes += [read.note] if read.note else []
        tail += "".join(f"\n[plait: {note}]" for note in notes)
        return TestRun(
            commit=commit,
            passed=result.succeeded and not problem,
            exit_code=result.exit_code,
            duration=result.duration,
            output_tail=tail,
            timed_out=result.timed_out,
            problem=problem,
            failed_tests=read.failed,
            setup=setup,
            outside_reads=tuple(opened),
            log_path=str(self.ctx.log_dir / log),
        )

    def _report_path(self, worktree: Worktree) -> Path:
        named = self.ctx.plan.junit_report
        if named is not None:
            return worktree.path.joinpath(*path_parts(named))
        return self.ctx.log_dir / f"tests.{self._tag}.{self._runs}.junit.xml"

    async def _watch(self) -> CheckoutWatch | None:
        listed = await self.ctx.git.run("ls-files", "-z", cwd=self.ctx.repo)
        tracked = [name for name in listed.stdout.split("\0") if name]
        root = await self.ctx.worktrees.root()
        return await asyncio.to_thread(CheckoutWatch.start, self.ctx.repo, tracked, root)

    # -- preparation -----------------------------------------------------------------------

    async def _copy_ignored(self, worktree: Worktree) -> list[str]:
        paths = list(self.ctx.plan.copy_ignored)
        if not paths:
            return []
        try:
            report = await self.ctx.worktrees.copy_ignored(worktree, self.ctx.repo, paths)
        except ValueError as exc:
            raise WorktreeError(f"copy_ignored: {exc}") from None
        if report.missing:
            return [f"copy_ignored: not found, skipped: {', '.join(report.missing)}"]
        return []

    async def _setups(
        self, commit: str, worktree: Worktree, env: dict[str, str]
    ) -> tuple[str, TestRun | None] | None:
        """Run the setups this commit needs: ("ran" | "reused" | "", the failed setup's
        verdict or None); None if the run was stopped meanwhile."""
        plan = self.ctx.plan
        steps = [
            (name, command)
            for name, command in (
                ("setup_command", plan.setup_command),
                ("test_setup_command", plan.test_setup_command),
            )
            if command
        ]
        if not steps:
            return "", None
        key = await self._inputs_key(commit)
        ran = False
        for name, command in steps:
            key = None if key is None else _digest(key, name, command)
            # Once one step ran, the ones after it build on a new result: they run too.
            if not ran and key is not None and self._reusable(name, key, worktree):
                continue
            ran = True
            self._setup_keys.pop(name, None)
            log = f"tests.{self._tag}.{self._runs}.{name}.log"
            result = await self._process(command, worktree, env, log)
            if result is None:
                return None
            if not result.succeeded:
                return "ran", _failed_setup(commit, name, result, str(self.ctx.log_dir / log))
            if key is not None:
                self._setup_keys[name] = key
        return ("ran" if ran else "reused"), None

    def _reusable(self, name: str, key: str, worktree: Worktree) -> bool:
        outputs = (worktree.path.joinpath(*path_parts(p)) for p in self.ctx.plan.keep_ignored)
        return self._setup_keys.get(name) == key and all(os.path.lexists(p) for p in outputs)

    async def _inputs_key(self, commit: str) -> str | None:
        """A digest of the `setup_inputs` as `commit` has them (their object ids: a file's
        content, a directory's whole tree), or None when the plan names none."""
        inputs = ["/".join(path_parts(p)) or "." for p in self.ctx.plan.setup_inputs]
        if not inputs:
            return None
        listed = await self.ctx.git.run("ls-tree", "-z", "--full-tree", commit, "--", *inputs)
        return _digest(listed.stdout)

    async def _process(
        self, command: str, worktree: Worktree, env: dict[str, str], log_name: str
    ) -> ProcessResult | None:
        """Run `command` by the shell in the worktree, its output in the log `log_name`; None
        if the run was stopped meanwhile (its process group is stopped)."""
        log_path = self.ctx.log_dir / log_name
        log_path.parent.mkdir(parents=True, exist_ok=True)
        handle = await start_process(
            shell_command=command,
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
        return waiter.result()

    async def _checkout(self, commit: str) -> Worktree:
        keep = self.ctx.plan.keep_ignored
        if self._worktree is None:
            path = await self.ctx.worktrees.integration_path(self.ctx.run_id)
            if path.exists():  # left by an earlier process of this run
                entry = Worktree(path, None, path.name, commit)
                self._worktree = await self.ctx.worktrees.checkout_detached(entry, commit, keep)
            else:
                self._worktree = await self.ctx.worktrees.create_detached(path, commit)
            self.ctx.live_worktrees[self._worktree.worktree_id] = self._worktree
        else:
            self._worktree = await self.ctx.worktrees.checkout_detached(
                self._worktree, commit, keep
            )
        return self._worktree

    async def close(self) -> None:
        """Remove the integration worktree: this tester's, or one an earlier process of the
        run left (it crashed after testing, and this process ran no test)."""
        if self._worktree is None:
            path = await self.ctx.worktrees.integration_path(self.ctx.run_id)
            if not path.exists():
                return
            self._worktree = Worktree(path, None, path.name, "")
        await self.ctx.worktrees.remove(self._worktree)
        self.ctx.live_worktrees.pop(self._worktree.worktree_id, None)
        self._worktree = None


def _watch_notes(watch: CheckoutWatch | None) -> list[str]:
    if watch is None:
        return [
            "no watch on your checkout here (it needs Linux inotify): whether the tests "
            "read your checkout instead of the worktree was not checked"
        ]
    if watch.uncovered:
        return [
            f"{watch.uncovered} directories of your checkout could not be watched "
            "(the kernel's fs.inotify.max_user_watches)"
        ]
    return []


def _venv_hint() -> str:
    """Why a command that worked in the user's shell may not here."""
    venv = os.environ.get("VIRTUAL_ENV")
    if not venv:
        return ""
    return (
        f"\nplait runs the setups and the tests without the virtualenv it was started in "
        f"({venv}), and pip installs only into a virtualenv: give the worktree an environment "
        'of its own (docs/plan-format.md, "An environment of its own")'
    )


def _failed_setup(commit: str, name: str, result: ProcessResult, log_path: str) -> TestRun:
    return TestRun(
        commit=commit,
        passed=False,
        exit_code=result.exit_code,
        duration=result.duration,
        output_tail=result.output_tail[-TAIL_CHARS:],
        timed_out=result.timed_out,
        problem=(
            f"{name} failed in the integration worktree ({exit_text(result)}): "
            f"{_last_lines(result)}{_venv_hint()}"
        ),
        setup="ran",
        log_path=log_path,
    )


def _last_lines(result: ProcessResult, lines: int = 15) -> str:
    return "\n".join(result.output_tail.strip().splitlines()[-lines:])


def _digest(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()
