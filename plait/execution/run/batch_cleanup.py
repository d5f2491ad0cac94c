"""After a batch: what landed is removed (its worktree back to the pool, or gone, and its
branch deleted); what did not land is kept, with a WorkKept record of where."""

from __future__ import annotations

from collections.abc import Mapping

from plait.domain.events import RunEvent, WorkKept, WorktreeRemoved
from plait.domain.plan.model import Batch
from plait.domain.statuses import TaskStatus
from plait.execution.git.refs import validate_ref_name
from plait.execution.run.context import RunContext
from plait.execution.run.task_work import TaskIds, keep_work, kept_ref
from plait.execution.worktrees.manager import Worktree, WorktreeError


async def dispose(ctx: RunContext, worktree: Worktree, *, delete_branch: bool) -> str | None:
    """A landed task's worktree: back to the pool, or removed. Returns its branch's ref
    when `delete_branch`: the caller deletes the batch's in one git process."""
    pool = ctx.pool
    if pool is not None and worktree.path.parent == await pool.directory():
        try:
            await pool.release(worktree)  # KEPT only if it holds an unreachable commit
        except WorktreeError:
            # Not leased from this pool (left by a process that died): remove it.
            await ctx.worktrees.remove(worktree)
    else:
        await ctx.worktrees.remove(worktree)
    if delete_branch and worktree.branch:
        return f"refs/heads/{validate_ref_name(worktree.branch)}"
    return None


async def _delete_refs(ctx: RunContext, refs: list[str]) -> None:
    """One `update-ref --stdin` for them all (deleting a ref that is gone already is no
    error there either)."""
    if refs:
        await ctx.git.run("update-ref", "--stdin", input="".join(f"delete {r}\n" for r in refs))


async def _keep_earlier(ctx: RunContext, batch_id: int, task_id: str, worktree: Worktree) -> None:
    """An earlier attempt's worktree, about to go: its work is kept first, unless it
    was (a failed or stopped attempt keeps its own; one a crash interrupted did not)."""
    _, _, number = worktree.worktree_id.rpartition(".")
    if not number.isdigit():
        return
    ids: TaskIds = {
        "run_id": ctx.run_id,
        "batch_id": batch_id,
        "task_id": task_id,
        "worktree_id": worktree.worktree_id,
        "attempt": int(number),
    }
    if await ctx.git.ref_target(kept_ref(ids)) is None:
        await keep_work(ctx, ids, worktree, "an earlier attempt, interrupted")


def _kept_already(ctx: RunContext, task_id: str) -> bool:
    """A failed attempt that recorded its own WorkKept (its work at its kept ref)."""
    task = ctx.recorder.state.tasks[task_id]
    mine = f"refs/plait/kept/{ctx.run_id}/{task_id}/{task.attempt or 1}"
    return task.status == TaskStatus.FAILED and task.kept_ref == mine


async def clean_up(ctx: RunContext, batch: Batch, left_out: Mapping[str, str]) -> None:
    """Remove what landed; keep (and record) every worktree and branch that did not.

    The batch's branch deletions are one git process and its WorktreeRemoved and WorkKept
    events one append, in the order of the batch's tasks (made before an earlier attempt's
    work is kept, which records on its own; and before an error goes on up)."""
    refs: list[str] = []
    events: list[RunEvent] = []

    async def settle() -> None:
        await _delete_refs(ctx, refs)
        await ctx.recorder.record(*events)
        refs.clear()
        events.clear()

    try:
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
                    if worktree.worktree_id != current:
                        await settle()
                        await _keep_earlier(ctx, batch.batch_id, task_id, worktree)
                    ref = await dispose(ctx, worktree, delete_branch=worktree.branch == branch)
                    refs += [ref] if ref is not None else []
                    ctx.live_worktrees.pop(worktree.worktree_id, None)
                    events.append(
                        WorktreeRemoved(
                            run_id=ctx.run_id,
                            task_id=task_id,
                            worktree_id=worktree.worktree_id,
                            batch_id=batch.batch_id,
                        )
                    )
                if not any(w.branch == branch for w in mine):
                    # No worktree of this process has it (a pooled slot another process took
                    # back moved on): the landed branch goes all the same.
                    refs.append(f"refs/heads/{branch}")
            elif task_id in left_out and not _kept_already(ctx, task_id):
                events.append(
                    WorkKept(
                        run_id=ctx.run_id,
                        task_id=task_id,
                        branch=branch,
                        reason=left_out[task_id][:500],
                        worktree_id=ctx.recorder.state.tasks[task_id].worktree_id,
                        batch_id=batch.batch_id,
                    )
                )
    except Exception:
        await settle()  # what was removed is recorded as such
        raise
    await settle()
