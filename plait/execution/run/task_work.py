"""What an attempt leaves behind: plait's commit of the task's work on its branch, and the
kept refs that hold what did not land (`refs/plait/kept/<run>/<task>/<attempt>`), so nothing a
task made is lost when its worktree goes."""

from __future__ import annotations

from pathlib import Path
from typing import TypedDict

from plait.domain.agents import BYPRODUCTS, PRESETS
from plait.domain.events import (
    WorkKept,
)
from plait.execution.git.cli import Git, GitError
from plait.execution.run.context import RunContext
from plait.execution.worktrees.manager import Worktree, WorktreeError
from plait.execution.worktrees.own_files import ForeignRepository


class TaskIds(TypedDict):
    run_id: str
    batch_id: int
    task_id: str
    worktree_id: str
    attempt: int


def commit_subject(title: str | None, task_id: str) -> str:
    """The subject of plait's commit of a task's work: how a new owner recognises a finished
    attempt's commit on the task's branch after its driver died."""
    return f"plait: {title or task_id}"


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
    except (GitError, WorktreeError, OSError, ForeignRepository) as exc:
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


def _excluded_patterns() -> list[str]:
    scratch = {pattern for preset in PRESETS.values() for pattern in preset.scratch}
    return [*BYPRODUCTS, *sorted(scratch)]


async def holds_task_work(worktree: Worktree, commit: str) -> bool:
    """Whether `commit` (where the base branch moved while the task ran) is the task's own
    work: reachable from the task's HEAD but not from where the task started. A commit of
    the user's is neither: the task's repository cannot reach it."""
    task_git = Git(worktree.path)
    try:
        return await task_git.is_ancestor(commit, "HEAD") and not await task_git.is_ancestor(
            commit, worktree.base_commit
        )
    except GitError:
        return False
