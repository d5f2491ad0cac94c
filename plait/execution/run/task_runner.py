"""Runs one attempt of one task in its own worktree and records what happened."""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import Enum

from plait.domain.events import (
    AgentReported,
    TaskChangedNothing,
    TaskFailed,
    TaskInterrupted,
    TaskStarted,
    TaskSucceeded,
    WorktreeCreated,
)
from plait.domain.plan.model import Task
from plait.execution.git import guard
from plait.execution.git.cli import GitError
from plait.execution.run.context import RunContext
from plait.execution.run.task_process import (
    agent_info,
    environment,
    exit_text,
    output_buffer,
    output_tail,
    supervised,
)
from plait.execution.run.task_work import (
    TaskIds,
    commit_subject,
    commit_work,
    holds_task_work,
    keep_work,
)
from plait.execution.runners.agent_output import LineFeed, parser_for
from plait.execution.runners.agent_report import AgentReport
from plait.execution.runners.agents import Command, build_command
from plait.execution.runners.output_buffer import OutputBuffer
from plait.execution.runners.processes import (
    ProcessResult,
    preparation_env,
)
from plait.execution.worktrees import own_files
from plait.execution.worktrees.manager import NestedRepository, Worktree, WorktreeError


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


async def make_worktree(
    ctx: RunContext, batch_id: int, task: Task, attempt: int, base_commit: str
) -> tuple[Worktree, WorktreeCreated]:
    """Create the attempt's worktree on the task's branch; the caller records the event
    (a batch's first worktrees are recorded in one append) before the task starts in it.
    Recovery finds one the driver died before recording (recovery._clear_unrecorded)."""
    if ctx.pool is not None:
        worktree = await ctx.pool.acquire(
            ctx.run_id, task.id, attempt, base_commit, keep=ctx.plan.keep_ignored
        )
    else:
        worktree = await ctx.worktrees.create(ctx.run_id, task.id, attempt, base_commit)
    ctx.live_worktrees[worktree.worktree_id] = worktree
    created = WorktreeCreated(
        run_id=ctx.run_id,
        batch_id=batch_id,
        task_id=task.id,
        worktree_id=worktree.worktree_id,
        attempt=attempt,
        path=str(worktree.path),
        branch=worktree.branch or "",
        base_commit=worktree.base_commit,
    )
    return worktree, created


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
                error = f"setup command failed ({exit_text(setup)}): {output_tail(setup)}"
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
        # Before any git runs in its directory: is its repository still the one plait made?
        own_files.check(worktree.path)
        after = guard.snapshot(common, exempt=exempt)
        changed_repo = guard.changes(before, after)
        for ref, tip in guard.moved_exempt(before, after).items():
            if await holds_task_work(worktree, tip):
                changed_repo.append(f"ref {ref} moved to {tip}, the task's own work")
        if changed_repo:
            error = (
                f"the task changed your repository at {ctx.repo}, which a task must not do"
                f" (plait did not undo it): {'; '.join(changed_repo)}"
            )
            return await _failed(ctx, ids, worktree, result.exit_code, error, False, started)
        if result.timed_out or result.exit_code != 0:
            # A timed-out task failed, whatever status it exited with after the signal.
            reason = report.error if report is not None and report.error else output_tail(result)
            error = f"command failed ({exit_text(result)}): {reason}"
            return await _failed(
                ctx, ids, worktree, result.exit_code, error, will_retry, started, result
            )
        if report is not None and report.error:
            # The agent's own verdict: it failed even though it exited 0.
            return await _failed(ctx, ids, worktree, 0, report.error, will_retry, started)
        commit = await commit_work(ctx, worktree, commit_subject(task.title, task.id), ids)
        if commit is not None and not await ctx.git.is_ancestor(worktree.base_commit, commit):
            # Its branch was deleted (HEAD unborn: a root commit) or rewritten: no merge
            # could take it, on this run or any resume. A failure, so it runs again.
            error = "its commit does not descend from its base (was its branch deleted?)"
            return await _failed(ctx, ids, worktree, 0, error, will_retry, started)
        changed = await ctx.worktrees.changed_files(worktree.base_commit, commit) if commit else []
    except NestedRepository as exc:
        return await _failed(ctx, ids, worktree, None, str(exc), will_retry, started)
    except own_files.ForeignRepository as exc:  # never retried: the task did it on purpose
        return await _failed(ctx, ids, worktree, None, str(exc), False, started)
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
    info = agent_info(ctx, command)
    return {
        "agent": command.preset.name,
        "agent_version": info.version if info is not None else "",
        "profile": command.profile.name if command.profile else "",
        "model": command.model,
    }


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
