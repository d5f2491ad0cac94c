"""After a batch: what landed is removed (its worktree back to the pool, or gone, and its
branch deleted); what did not land is kept, with a WorkKept record of where."""

from __future__ import annotations

from collections.abc import Mapping

from plait.domain.events import WorkKept, WorktreeRemoved
from plait.domain.plan.model import Batch
from plait.domain.statuses import TaskStatus
from plait.execution.run.context import RunContext
from plait.execution.worktrees.manager import Worktree, WorktreeError


async def dispose(ctx: RunContext, worktree: Worktree, *, delete_branch: bool) -> None:
    """A landed task's worktree: back to the pool, or removed."""
    pool = ctx.pool
    if pool is not None and worktree.path.parent == await pool.directory():
        try:
            await pool.release(worktree)  # KEPT only if it holds an unreachable commit
        except WorktreeError:
            # Not leased from this pool (left by a process that died): remove it.
            await ctx.worktrees.remove(worktree, delete_branch=delete_branch)
            return
        if delete_branch and worktree.branch:
            ref = f"refs/heads/{worktree.branch}"
            await ctx.git.run("update-ref", "-d", ref, check=False)
        return
    await ctx.worktrees.remove(worktree, delete_branch=delete_branch)


async def clean_up(ctx: RunContext, batch: Batch, left_out: Mapping[str, str]) -> None:
    """Remove what landed; keep (and record) every worktree and branch that did not."""
    for task_id in batch.task_ids:
        branch = ctx.worktrees.task_branch(ctx.run_id, task_id)
        mine = [
            w
            for w in ctx.live_worktrees.values()
            if w.worktree_id.startswith(f"{ctx.run_id}/{task_id}.")
        ]
        status = ctx.recorder.state.tasks[task_id].status
        if status in (TaskStatus.NO_CHANGE, TaskStatus.LANDED):
            # Landed work, or none at all (no change): nothing here is worth keeping.
            current = ctx.recorder.state.tasks[task_id].worktree_id
            for worktree in sorted(mine, key=lambda w: w.worktree_id != current):
                await dispose(ctx, worktree, delete_branch=worktree.branch == branch)
                ctx.live_worktrees.pop(worktree.worktree_id, None)
                await ctx.recorder.record(
                    WorktreeRemoved(
                        run_id=ctx.run_id,
                        task_id=task_id,
                        worktree_id=worktree.worktree_id,
                        batch_id=batch.batch_id,
                    )
                )
        elif task_id in left_out:
            await ctx.recorder.record(
                WorkKept(
                    run_id=ctx.run_id,
                    task_id=task_id,
                    branch=branch,
                    reason=left_out[task_id][:500],
                    worktree_id=ctx.recorder.state.tasks[task_id].worktree_id,
                    batch_id=batch.batch_id,
                )
            )
