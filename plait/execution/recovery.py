"""What a run needs after its driving process died: its worktrees found again, its
interrupted tasks recorded, a requested stop finished."""

from __future__ import annotations

from pathlib import Path

from plait.domain.events import RunStopped, StopRequested, TaskInterrupted
from plait.execution.context import RunContext
from plait.execution.recorder import RunRecorder
from plait.execution.worktrees import Worktree


async def adopt_worktrees(ctx: RunContext) -> None:
    """Worktrees an earlier process of this run left: known again, so cleanup finds them."""
    root = (await ctx.worktrees.root()) / ctx.run_id
    for entry in await ctx.worktrees.list_porcelain():
        path = Path(entry.path).resolve()
        if path.parent == root and path.name != "_integration":
            worktree_id = f"{ctx.run_id}/{path.name}"
            ctx.live_worktrees[worktree_id] = Worktree(
                path, entry.branch_name, worktree_id, entry.head or ""
            )


async def interrupt_tasks(recorder: RunRecorder, reason: str) -> None:
    state = recorder.state
    for task in list(state.tasks.values()):
        if task.status in ("created", "running") and task.worktree_id:
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
    if state.status in ("running", "created"):
        await recorder.record(StopRequested(run_id=state.run_id, reason=reason))
    await interrupt_tasks(recorder, "the process driving the run ended")
    await recorder.record(RunStopped(run_id=state.run_id, reason=reason))
