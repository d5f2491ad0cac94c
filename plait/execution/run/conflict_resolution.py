"""A conflicted agent task resolves its own conflict before anything is re-run.

The task's branch is checked out in a fresh worktree and the new integration tip merged
into it, leaving the conflict markers in place. The task's own agent is then asked to
resolve them: its earlier session resumed where the CLI can (`claude --resume`,
`codex exec resume`), a new session otherwise (aider, with the files in its context).
A resolution counts only when the agent reports no error and no marker is left; plait
then commits the merge (two parents: the task's work and the tip) and it is validated
like any branch. Anything else is recorded and the task is re-run on the new tip.

Events: TaskRequeued, WorktreeCreated, ConflictResolutionStarted, TaskOutput...,
AgentReported, then ConflictResolved or ConflictResolutionFailed.
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from plait.domain.events import (
    ConflictResolutionFailed,
    ConflictResolutionStarted,
    ConflictResolved,
    TaskRequeued,
)
from plait.domain.plan.model import Task
from plait.execution.git.cli import GitError
from plait.execution.run.context import RunContext
from plait.execution.run.task_process import environment, exit_text, output_buffer, supervised
from plait.execution.run.task_runner import reported
from plait.execution.run.task_work import TaskIds, commit_work
from plait.execution.runners.agent_output import LineFeed, parser_for
from plait.execution.runners.agents import build_command, preset_of
from plait.execution.worktrees import own_files
from plait.execution.worktrees.manager import NestedRepository, Worktree, WorktreeError

__all__ = ["Resolution", "can_resolve", "resolve_conflict"]

PROMPT = """\
Your change for this task conflicts with work that landed after you made it. The new work \
is merged into your branch in the current directory, and git left conflict markers in the \
files below. Resolve every conflict so that both changes are kept and the code works, and \
remove every conflict marker. Do not commit: plait commits the result.

Conflicted files:
{files}

The task was:
{prompt}
"""

_MARKER = re.compile(r"^(<<<<<<< |>>>>>>> |=======$|\|\|\|\|\|\|\| )", re.M)


@dataclass(frozen=True)
class Resolution:
    worktree: Worktree | None
    commit: str | None  # None: not resolved (the reason was recorded)
    reason: str = ""


def can_resolve(ctx: RunContext, task: Task) -> bool:
    """Only an agent preset can be asked to resolve; a shell task is simply re-run."""
    return preset_of(ctx.plan.agent_for(task)) is not None


Provision = Callable[[int, Task, str], Awaitable[Worktree]]


async def resolve_conflict(
    ctx: RunContext,
    batch_id: int,
    task: Task,
    onto: str,
    files: tuple[str, ...],
    provision: Provision,
) -> Resolution:
    """`provision(batch_id, task, base)` makes the task's next worktree on its branch."""
    state = ctx.recorder.state.tasks[task.id]
    own_commit, session = state.commit, state.session_id
    await ctx.recorder.record(
        TaskRequeued(
            run_id=ctx.run_id,
            batch_id=batch_id,
            task_id=task.id,
            reason="merge conflict: its agent resolves it on the new tip",
        )
    )
    try:
        worktree = await provision(batch_id, task, own_commit or onto)
    except (GitError, WorktreeError, OSError) as exc:
        return Resolution(None, None, f"no worktree for the resolution: {exc}")
    ids: TaskIds = {
        "run_id": ctx.run_id,
        "batch_id": batch_id,
        "task_id": task.id,
        "worktree_id": worktree.worktree_id,
        "attempt": ctx.recorder.state.tasks[task.id].attempt,
    }
    started = time.monotonic()
    conflicted = await _merge_with_markers(ctx, worktree, onto) or list(files)
    preset = preset_of(ctx.plan.agent_for(task))
    resume = session if preset is not None and preset.resume_args and session else ""
    log_path = str(ctx.attempt_log(task.id, ids["attempt"]))
    await ctx.recorder.record(
        ConflictResolutionStarted(
            **ids, onto=onto, files=conflicted, session_id=resume, log_path=log_path
        )
    )
    reason = await _ask_agent(ctx, ids, task, worktree, conflicted, resume)
    commit = None
    foreign = own_files.problem(worktree.path)  # then no git of plait's runs in it
    if foreign is not None:
        reason = str(own_files.ForeignRepository(worktree.path, foreign))
    if not reason:
        reason = _markers_left(worktree.path, conflicted)
    if not reason:
        try:
            commit = await commit_work(ctx, worktree, f"plait: resolve {task.id} onto the tip", ids)
        except (GitError, OSError, NestedRepository, own_files.ForeignRepository) as exc:
            reason = f"plait could not commit the resolution: {exc}"
    if commit is None or reason:
        reason = reason or "the resolution changed nothing"
        # The task's own work is its branch's commit; the half-done merge goes, so the
        # branch can move on to the re-run.
        if foreign is None:
            await ctx.git.run("merge", "--abort", cwd=worktree.path, check=False)
        await ctx.recorder.record(ConflictResolutionFailed(**ids, reason=reason[:2000]))
        return Resolution(worktree, None, reason)
    await ctx.recorder.record(
        ConflictResolved(**ids, commit=commit, duration=time.monotonic() - started)
    )
    return Resolution(worktree, commit)


async def _merge_with_markers(ctx: RunContext, worktree: Worktree, onto: str) -> list[str]:
    """Merge `onto` into the task's branch in its worktree, leaving the markers; the files
    git could not merge."""
    identity = await ctx.git.identity_options(cwd=worktree.path)
    await ctx.git.run(
        *identity,
        "merge",
        "--no-ff",
        "--no-commit",
        "--no-verify",
        "-m",
        "plait: merge the new tip",
        onto,
        cwd=worktree.path,
        check=False,
    )
    unmerged = await ctx.git.run("diff", "--name-only", "--diff-filter=U", "-z", cwd=worktree.path)
    return [name for name in unmerged.stdout.split("\0") if name]


async def _ask_agent(
    ctx: RunContext,
    ids: TaskIds,
    task: Task,
    worktree: Worktree,
    files: list[str],
    session: str,
) -> str:
    """Run the agent on the conflict; '' when it finished without reporting an error."""
    listed = "\n".join(f"- {name}" for name in files)
    prompt = PROMPT.format(files=listed, prompt=task.prompt or task.title)
    scratch = ctx.log_dir / f"{task.id}.{ids['attempt']}.scratch"
    scratch.mkdir(parents=True, exist_ok=True)
    try:
        command = build_command(
            ctx.plan.agent_for(task),
            prompt,
            task.id,
            task.title or task.id,
            profile=ctx.plan.profile_for(task),
            scratch=scratch,
            session=session or None,
        )
    except ValueError as exc:
        return str(exc)
    argv = [*(command.argv or ()), *(command.preset.resolve_args if command.preset else ())]
    if command.preset is not None and command.preset.files_flag:
        for name in files:  # a tool that reads only what it is given: the conflicted files
            argv += [command.preset.files_flag, name]
    if command.preset is None:
        return "only an agent preset can resolve a conflict"
    log_path = ctx.attempt_log(task.id, ids["attempt"])
    buffer = output_buffer(ctx, ids, log_path)
    feed = LineFeed(parser_for(command.preset.output))
    result = await supervised(
        ctx,
        None,
        argv,
        worktree,
        environment(ctx, task, worktree, command),
        ctx.plan.timeout_for(task),
        buffer,
        log_path,
        feed=feed,
    )
    await buffer.close()
    if result is None:
        return "stopped"
    report = await reported(ctx, ids, command, feed)
    if report is not None and report.error:
        return report.error
    if result.timed_out or result.exit_code != 0:
        return f"the agent {exit_text(result)}"
    return ""


def _markers_left(root: Path, files: list[str]) -> str:
    left = []
    for name in files:
        try:
            text = (root / name).read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            continue  # resolved by deleting the file
        if _MARKER.search(text):
            left.append(name)
    return f"conflict markers are left in {', '.join(left)}" if left else ""
