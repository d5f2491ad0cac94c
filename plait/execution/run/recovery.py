"""What a run needs after its driving process died: its worktrees found again, its
interrupted tasks recorded, a requested stop finished."""

from __future__ import annotations

from pathlib import Path

from plait.domain.events import RunStopped, StopRequested, TaskInterrupted
from plait.domain.ids import run_branches
from plait.domain.statuses import RunStatus, TaskStatus
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
    state = recorder.state
    for task in list(state.tasks.values()):
        if task.status in (TaskStatus.RUNNING, TaskStatus.RESOLVING) and task.worktree_id:
            await recorder.record(
                TaskInterrupted(
                    run_id=state.run_id,
                    batch_id=task.batch_id or 0,
                    task_id=task.task_id,
                    worktree_id=task.worktree_id,
                    attempt=task.attempt or 1,
                    reason=reason,
                )
            )


async def stop_orphan(recorder: RunRecorder, reason: str) -> None:
    state = recorder.state
    if state.status in (RunStatus.RUNNING, RunStatus.PENDING):
        await recorder.record(StopRequested(run_id=state.run_id, reason=reason))
    await interrupt_tasks(recorder, "the process driving the run ended")
    await recorder.record(RunStopped(run_id=state.run_id, reason=reason))
