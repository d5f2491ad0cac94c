"""Runs one attempt of one task in its own worktree and records what happened."""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Literal, TypedDict

from plait.domain.agents import BYPRODUCTS, PRESETS
from plait.domain.events import (
    AgentReported,
    TaskChangedNothing,
    TaskFailed,
    TaskInterrupted,
    TaskOutput,
    TaskStarted,
    TaskSucceeded,
    WorkKept,
    WorktreeCreated,
)
from plait.domain.plan.model import Task
from plait.execution.git import guard
from plait.execution.git.cli import GitError
from plait.execution.run.context import RunContext
from plait.execution.runners.agent_check import AgentInfo, with_own_tools
from plait.execution.runners.agent_output import LineFeed, parser_for
from plait.execution.runners.agent_report import AgentReport
from plait.execution.runners.agents import Command, agent_env, build_command
from plait.execution.runners.output_buffer import OutputBuffer
from plait.execution.runners.processes import (
    ProcessHandle,
    ProcessResult,
    preparation_env,
    start_process,
    task_env,
)
from plait.execution.runners.sandbox import sandboxed
from plait.execution.worktrees.manager import NestedRepository, Worktree, WorktreeError


class TaskIds(TypedDict):
    run_id: str
    batch_id: int
    task_id: str
    worktree_id: str
    attempt: int


class Outcome(Enum):
    SUCCEEDED = "succeeded"
    NO_CHANGE = "no_change"  # exited 0 and changed nothing, where that is not allowed
    FAILED = "failed"
    INTERRUPTED = "interrupted"


@dataclass(frozen=True)
class AttemptResult:
    task_id: str
    attempt: int
    outcome: Outcome
    worktree: Worktree | None
    commit: str | None = None
    error: str = ""


async def prepare_worktree(
    ctx: RunContext, batch_id: int, task: Task, attempt: int, base_commit: str
) -> Worktree:
    """Create the attempt's worktree on the task's branch and record it."""
    if ctx.pool is not None:
        worktree = await ctx.pool.acquire(
            ctx.run_id, task.id, attempt, base_commit, keep=ctx.plan.keep_ignored
        )
    else:
        worktree = await ctx.worktrees.create(ctx.run_id, task.id, attempt, base_commit)
    ctx.live_worktrees[worktree.worktree_id] = worktree
    await ctx.recorder.record(
        WorktreeCreated(
            run_id=ctx.run_id,
            batch_id=batch_id,
            task_id=task.id,
            worktree_id=worktree.worktree_id,
            attempt=attempt,
            path=str(worktree.path),
            branch=worktree.branch or "",
            base_commit=worktree.base_commit,
        )
    )
    return worktree


async def run_attempt(
    ctx: RunContext, batch_id: int, task: Task, attempt: int, worktree: Worktree, will_retry: bool
) -> AttemptResult:
    """Setup, the task's command, and the commit of its changes. Never raises for the task's
    own failures: they are recorded and returned."""
    ids: TaskIds = {
        "run_id": ctx.run_id,
        "batch_id": batch_id,
        "task_id": task.id,
        "worktree_id": worktree.worktree_id,
        "attempt": attempt,
    }
    started = time.monotonic()
    log_path = ctx.attempt_log(task.id, attempt)
    buffer = output_buffer(ctx, ids, log_path)
    try:
        command = build_command(
            ctx.plan.agent_for(task),
            task.prompt or "",
            task.id,
            task.title or task.id,
            task.run,
            profile=ctx.plan.profile_for(task),
            scratch=ctx.log_dir / f"{task.id}.{attempt}.scratch",
        )
    except ValueError as exc:
        return await _failed(ctx, ids, worktree, None, str(exc), False, started)
    argv = command.argv if command.argv is not None else ["/bin/sh", "-c", command.shell or ""]
    await ctx.recorder.record(
        TaskStarted(**ids, command=argv, log_path=str(log_path), **_agent_facts(ctx, command))
    )
    if command.preset is not None:
        (ctx.log_dir / f"{task.id}.{attempt}.scratch").mkdir(parents=True, exist_ok=True)
    env = environment(ctx, task, worktree, command)
    feed = LineFeed(parser_for(command.preset.output)) if command.preset is not None else None
    try:
        await _copy_ignored(ctx, worktree, buffer)
        common = await ctx.git.common_dir()
        exempt = [f"refs/heads/{ctx.recorder.state.base_branch}"]
        before = guard.snapshot(common, exempt=exempt)
        if ctx.plan.setup_command:
            await buffer.add("stderr", f"$ {ctx.plan.setup_command}\n")
            setup = await supervised(
                ctx,
                ctx.plan.setup_command,
                None,
                worktree,
                preparation_env(env),
                ctx.plan.timeout_for(task),
                buffer,
                log_path,
            )
            if setup is None:
                await buffer.close()
                return await _interrupted(ctx, ids, worktree, "stopped during setup")
            if setup.timed_out or setup.exit_code != 0:
                await buffer.close()
                error = f"setup command failed ({exit_text(setup)}): {_tail(setup)}"
                return await _failed(
                    ctx, ids, worktree, setup.exit_code, error, will_retry, started, setup
                )
        result = await supervised(
            ctx,
            command.shell,
            command.argv,
            worktree,
            env,
            ctx.plan.timeout_for(task),
            buffer,
            log_path,
            feed=feed,
        )
        await buffer.close()
        if result is None:
            return await _interrupted(ctx, ids, worktree, "stopped")
        report = await reported(ctx, ids, command, feed)
        if changed_repo := guard.changes(before, guard.snapshot(common, exempt=exempt)):
            error = (
                f"the task changed your repository at {ctx.repo}, which a task must not do"
                f" (plait did not undo it): {'; '.join(changed_repo)}"
            )
            return await _failed(ctx, ids, worktree, result.exit_code, error, False, started)
        if result.timed_out or result.exit_code != 0:
            # A timed-out task failed, whatever status it exited with after the signal.
            reason = report.error if report is not None and report.error else _tail(result)
            error = f"command failed ({exit_text(result)}): {reason}"
            return await _failed(
                ctx, ids, worktree, result.exit_code, error, will_retry, started, result
            )
        if report is not None and report.error:
            # The agent's own verdict: it failed even though it exited 0.
            return await _failed(ctx, ids, worktree, 0, report.error, will_retry, started)
        commit = await commit_work(ctx, worktree, f"plait: {task.title or task.id}", ids)
        if commit is not None and not await ctx.git.is_ancestor(worktree.base_commit, commit):
            # Its branch was deleted (HEAD unborn: a root commit) or rewritten: no merge
            # could take it, on this run or any resume. A failure, so it runs again.
            error = "its commit does not descend from its base (was its branch deleted?)"
            return await _failed(ctx, ids, worktree, 0, error, will_retry, started)
        changed = await ctx.worktrees.changed_files(worktree.base_commit, commit) if commit else []
    except NestedRepository as exc:
        return await _failed(ctx, ids, worktree, None, str(exc), will_retry, started)
    except (GitError, WorktreeError, OSError) as exc:
        await buffer.close()
        return await _failed(
            ctx, ids, worktree, None, f"plait could not run the task: {exc}", will_retry, started
        )
    if commit is None and not ctx.plan.allows_no_change(task):
        await ctx.recorder.record(TaskChangedNothing(**ids, duration=time.monotonic() - started))
        return AttemptResult(
            task.id, attempt, Outcome.NO_CHANGE, worktree, error="it exited 0 but changed nothing"
        )
    await ctx.recorder.record(
        TaskSucceeded(
            **ids, commit=commit, changed_files=changed, duration=time.monotonic() - started
        )
    )
    return AttemptResult(task.id, attempt, Outcome.SUCCEEDED, worktree, commit)


def _agent_facts(ctx: RunContext, command: Command) -> dict[str, str]:
    """What TaskStarted records of the agent: preset, version (as checked), profile, model."""
    if command.preset is None:
        return {"profile": command.profile.name if command.profile else ""}
    info = _agent_info(ctx, command)
    return {
        "agent": command.preset.name,
        "agent_version": info.version if info is not None else "",
        "profile": command.profile.name if command.profile else "",
        "model": command.model,
    }


def output_buffer(ctx: RunContext, ids: TaskIds, log_path: Path) -> OutputBuffer:
    """Output as bounded TaskOutput events, and all of it in the attempt's log file."""
    log_path.parent.mkdir(parents=True, exist_ok=True)

    async def emit(stream: str, text: str) -> None:
        kind: Literal["stdout", "stderr"] = "stderr" if stream == "stderr" else "stdout"
        await ctx.recorder.record(TaskOutput(**ids, stream=kind, text=text))

    return OutputBuffer(
        emit,
        chunk_bytes=ctx.settings.output_chunk_bytes,
        flush_seconds=ctx.settings.output_flush_seconds,
        budget_bytes=ctx.settings.max_output_event_bytes,
        log_path=str(log_path),
    )


def environment(
    ctx: RunContext, task: Task, worktree: Worktree, command: Command
) -> dict[str, str]:
    """plait's environment without its own secrets, the task variables, and what the
    command's preset and profile allow of the provider settings."""
    variables = {
        "PLAIT_RUN_ID": ctx.run_id,
        "PLAIT_TASK_ID": task.id,
        "PLAIT_TASK_TITLE": task.title or task.id,
        "PLAIT_TASK_PROMPT": task.prompt or "",
        "PLAIT_WORKTREE": str(worktree.path),
    }
    env = agent_env(task_env(os.environ, variables), command)
    return with_own_tools(env, _agent_info(ctx, command))


def _agent_info(ctx: RunContext, command: Command) -> AgentInfo | None:
    if command.preset is None:
        return None
    program = command.argv[0] if command.argv else command.preset.program
    return ctx.agents.get(program) or ctx.agents.get(command.preset.program)


def kept_ref(ids: TaskIds) -> str:
    return f"refs/plait/kept/{ids['run_id']}/{ids['task_id']}/{ids['attempt']}"


async def commit_work(
    ctx: RunContext, worktree: Worktree, message: str, ids: TaskIds
) -> str | None:
    """Commit the worktree's changes on the task's branch, without tool files, byproducts
    (see BYPRODUCTS) and copy_ignored secrets. Commits the task made that the result does
    not reach are kept (WorkKept). NestedRepository: refused, nothing committed."""
    excludes = await _excludes(ctx)
    ref = kept_ref(ids)
    saved = await ctx.worktrees.save(
        worktree, message, excludes=excludes, drop=ctx.plan.copy_ignored, kept_ref=ref
    )
    if saved.kept is not None:
        await _record_kept(
            ctx, ids, ref, saved.kept, "commits the task made that its result does not hold"
        )
    return saved.commit


async def keep_work(ctx: RunContext, ids: TaskIds, worktree: Worktree, why: str) -> None:
    """A failed or interrupted attempt: whatever it did, committed to its kept ref (and the
    task branch), so nothing of it is lost when its worktree goes."""
    ref = kept_ref(ids)
    try:
        commit = await ctx.worktrees.keep(
            worktree,
            ref,
            f"plait: kept work of {ids['task_id']} (attempt {ids['attempt']}): {why}"[:200],
            excludes=await _excludes(ctx),
            drop=ctx.plan.copy_ignored,
        )
    except (GitError, WorktreeError, OSError) as exc:
        await _record_kept(
            ctx, ids, "", "", f"plait could not commit it ({exc}); it stays in {worktree.path}"
        )
        return
    if commit is not None:
        await _record_kept(ctx, ids, ref, commit, why)


async def _record_kept(ctx: RunContext, ids: TaskIds, ref: str, commit: str, why: str) -> None:
    await ctx.recorder.record(
        WorkKept(
            run_id=ids["run_id"],
            batch_id=ids["batch_id"],
            task_id=ids["task_id"],
            worktree_id=ids["worktree_id"],
            attempt=ids["attempt"],
            branch=ctx.worktrees.task_branch(ids["run_id"], ids["task_id"]) if ref else "",
            ref=ref,
            commit=commit,
            reason=why[:500],
        )
    )


async def _excludes(ctx: RunContext) -> Path:
    return await ctx.worktrees.write_excludes(ctx.log_dir / "commit.exclude", _excluded_patterns())


async def reported(
    ctx: RunContext, ids: TaskIds, command: Command, feed: LineFeed | None
) -> AgentReport | None:
    """Record what the agent said of its session (verdict, tokens, cost); None for shell
    tasks and custom templates, whose exit status is their only verdict."""
    if feed is None or command.preset is None:
        return None
    report = feed.report()
    await ctx.recorder.record(
        AgentReported(
            **ids,
            agent=command.preset.name,
            model=report.model or command.model,
            session_id=report.session_id,
            tokens_in=report.tokens_in,
            tokens_out=report.tokens_out,
            cost_usd=report.cost_usd,
            error=report.error,
        )
    )
    return report


def _excluded_patterns() -> list[str]:
    scratch = {pattern for preset in PRESETS.values() for pattern in preset.scratch}
    return [*BYPRODUCTS, *sorted(scratch)]


async def _copy_ignored(ctx: RunContext, worktree: Worktree, buffer: OutputBuffer) -> None:
    if not ctx.plan.copy_ignored:
        return
    try:
        report = await ctx.worktrees.copy_ignored(worktree, ctx.repo, list(ctx.plan.copy_ignored))
    except ValueError as exc:  # a path the copy refuses: the task fails, the run does not crash
        raise WorktreeError(f"copy_ignored: {exc}") from None
    missing = getattr(report, "missing", ())
    if missing:
        await buffer.add(
            "stderr", f"plait: copy_ignored: not found, skipped: {', '.join(missing)}\n"
        )


async def supervised(
    ctx: RunContext,
    shell: str | None,
    argv: list[str] | None,
    worktree: Worktree,
    env: dict[str, str],
    timeout: float,
    buffer: OutputBuffer,
    log_path: Path,
    feed: LineFeed | None = None,
) -> ProcessResult | None:
    """Run a process; None if the run was stopped meanwhile (the process group is killed).
    With `feed` (an agent's output parser) the output events carry its rendering of each
    line; the log file keeps every byte as the CLI wrote it."""

    async def on_output(stream: str, text: str) -> None:
        if feed is None:
            await buffer.add(stream, text)
            return
        rendered = feed.add(stream, text)
        if rendered:
            await buffer.add(stream, rendered)

    if ctx.plan.sandbox is not None:
        # The agent's scratch directory (`<task>.<attempt>.scratch`, as the worktree id ends).
        scratch = ctx.log_dir / f"{worktree.worktree_id.rsplit('/', 1)[-1]}.scratch"
        argv = sandboxed(
            argv if argv is not None else ["/bin/sh", "-c", shell or ""],
            cwd=worktree.path,
            writable=[scratch] if scratch.is_dir() else [],
            readable=[ctx.repo, await ctx.git.common_dir()],
            network=ctx.plan.sandbox_network,
        )
        shell = None
    handle: ProcessHandle = await start_process(
        argv,
        shell_command=shell,
        cwd=worktree.path,
        env=env,
        timeout=timeout,
        on_output=on_output,
        max_chunk=ctx.settings.output_chunk_bytes,
        log_path=log_path,
        grace=ctx.settings.stop_grace,
    )
    waiter = asyncio.ensure_future(handle.wait())
    stopper = asyncio.ensure_future(ctx.stop.wait())
    await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
    stopper.cancel()
    if feed is not None:
        for stream, text in feed.flush().items():
            await buffer.add(stream, text)
    if waiter.done():
        return waiter.result()
    waiter.cancel()
    await handle.terminate(ctx.settings.stop_grace)
    return None


async def _failed(
    ctx: RunContext,
    ids: TaskIds,
    worktree: Worktree,
    exit_code: int | None,
    error: str,
    will_retry: bool,
    started: float,
    process: ProcessResult | None = None,
) -> AttemptResult:
    await ctx.recorder.record(
        TaskFailed(
            **ids,
            exit_code=exit_code,
            error=error[-2000:],
            will_retry=will_retry,
            duration=time.monotonic() - started,
            timed_out=process is not None and process.timed_out,
        )
    )
    await keep_work(ctx, ids, worktree, "the attempt failed")
    return AttemptResult(ids["task_id"], ids["attempt"], Outcome.FAILED, worktree, error=error)


async def _interrupted(
    ctx: RunContext, ids: TaskIds, worktree: Worktree, reason: str
) -> AttemptResult:
    await ctx.recorder.record(TaskInterrupted(**ids, reason=reason))
    await keep_work(ctx, ids, worktree, f"the attempt was interrupted ({reason})")
    return AttemptResult(
        ids["task_id"], ids["attempt"], Outcome.INTERRUPTED, worktree, error=reason
    )


def exit_text(result: ProcessResult) -> str:
    if result.timed_out:
        return f"timed out after {result.duration:.0f} s"
    if result.exit_code is not None and result.exit_code < 0:
        return f"killed by signal {-result.exit_code}"
    return f"exit status {result.exit_code}"


def _tail(result: ProcessResult, lines: int = 15) -> str:
    return "\n".join(result.output_tail.strip().splitlines()[-lines:])
