"""What a run needs after its driving process died: its worktrees found again, its
interrupted tasks recorded, a requested stop finished."""

from __future__ import annotations

from pathlib import Path

from plait.domain.ids import run_branches
from plait.domain.run.decide import interruptions, orphan_stop
from plait.execution.run.context import RunContext
from plait.execution.run.recorder import RunRecorder
from plait.execution.worktrees.manager import Worktree


async def adopt_worktrees(ctx: RunContext) -> None:
    """Worktrees an earlier process of this run left: known again, so a retry can move the
    task branch off them and cleanup finds them. Those in the run's directory, and any
    other (a pooled one) that has one of the run's task branches checked out."""
    root = (await ctx.worktrees.root()) / ctx.run_id
    by_path = {
        Path(task.worktree_path).resolve(): task.worktree_id
        for task in ctx.recorder.state.tasks.values()
        if task.worktree_path and task.worktree_id
    }
    task_branches = run_branches(ctx.run_id)
    for entry in await ctx.worktrees.list_porcelain():
        path = Path(entry.path).resolve()
        branch = entry.branch_name
        mine = path.parent == root and path.name != "_integration"
        if not mine and not (branch and branch.startswith(task_branches)):
            continue
        worktree_id = by_path.get(path) or f"{ctx.run_id}/{path.name}"
        ctx.live_worktrees[worktree_id] = Worktree(path, branch, worktree_id, entry.head or "")


async def interrupt_tasks(recorder: RunRecorder, reason: str) -> None:
    """Record the interruption of every task whose process died (or was stopped)."""
    await recorder.record(*interruptions(recorder.state, reason))


async def stop_orphan(recorder: RunRecorder, reason: str) -> None:
    """Finish stopping a run nobody drives."""
    await recorder.record(*orphan_stop(recorder.state, reason))
