"""What a run needs after its driving process died: its worktrees found again, its
interrupted tasks recorded, a requested stop finished."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from plait.domain.events import TaskSucceeded
from plait.domain.ids import run_branches
from plait.domain.run.decide import Recovery, interruptions, orphan_stop, recovery
from plait.domain.statuses import RunStatus, TaskStatus
from plait.execution.git.cli import Git
from plait.execution.run.context import RunContext
from plait.execution.run.recorder import RunRecorder
from plait.execution.run.task_work import commit_subject
from plait.execution.runners.orphans import kill_process_groups, processes_inside
from plait.execution.worktrees import task_dirs
from plait.execution.worktrees.manager import Worktree, WorktreeManager

log = logging.getLogger(__name__)


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


async def adopt_finished_attempts(recorder: RunRecorder, git: Git) -> list[str]:
    """Attempts that finished under a driver that died before recording it: the task's
    branch ends in plait's own commit of its work ("plait: <title>", made only once the
    command succeeded), so the attempt is recorded as succeeded with that commit and carried
    to the merge instead of run again. A branch that ends anywhere else (nothing, or the
    task's own commits) is left to interrupt_tasks: the attempt runs again."""
    adopted = []
    for task in list(recorder.state.tasks.values()):
        if task.status != TaskStatus.RUNNING or not (task.branch and task.base_commit):
            continue
        tip = await git.ref_target(f"refs/heads/{task.branch}")
        if tip is None or tip == task.base_commit or not task.worktree_id:
            continue
        subject = await git.run("log", "-1", "--format=%s", tip, check=False)
        descends = await git.run("merge-base", "--is-ancestor", task.base_commit, tip, check=False)
        if subject.stdout.strip() != commit_subject(task.title, task.task_id):
            continue
        if descends.returncode != 0:
            continue
        names = await git.run("diff", "--name-only", "--no-renames", "-z", task.base_commit, tip)
        await recorder.record(
            TaskSucceeded(
                run_id=recorder.run_id,
                batch_id=task.batch_id or 0,
                task_id=task.task_id,
                worktree_id=task.worktree_id,
                attempt=task.attempt or 1,
                commit=tip,
                changed_files=[name for name in names.stdout.split("\0") if name],
            )
        )
        adopted.append(task.task_id)
    if adopted:
        log.warning("run %s: adopted the finished attempts of %s", recorder.run_id, adopted)
    return adopted


async def recovered_run(recorder: RunRecorder) -> Recovery:
    """What start-up does with a run a dead driver left: its finished attempts adopted (a
    running run), then the domain's decision (plait.domain.run.decide.recovery)."""
    if recorder.state.status == RunStatus.RUNNING:
        await adopt_finished_attempts(recorder, Git(Path(recorder.state.repo_path or ".")))
    return recovery(recorder.state)


async def interrupt_tasks(recorder: RunRecorder, reason: str) -> None:
    """Record the interruption of every task whose process died (or was stopped)."""
    await recorder.record(*interruptions(recorder.state, reason))


async def stop_orphan(recorder: RunRecorder, reason: str) -> None:
    """Finish stopping a run nobody drives."""
    await recorder.record(*orphan_stop(recorder.state, reason))


async def reap_orphans(recorder: RunRecorder, git: Git, worktrees: WorktreeManager) -> None:
    """Kill what a dead driver's tasks left running here (tasks die with their driver, see
    runners/sessions.py; this catches a process that shed its session mark, in this PID
    namespace); clear half-made worktrees."""
    run_root = (await worktrees.root()) / recorder.run_id
    # The run's own directory, and the worktrees its unfinished tasks were given (a
    # pooled worktree lives outside the run's directory).
    places = {run_root} | {
        Path(task.worktree_path)
        for task in recorder.state.tasks.values()
        if task.status in (TaskStatus.RUNNING, TaskStatus.RESOLVING) and task.worktree_path
    }
    pids: set[int] = set()
    for place in places:
        pids.update(await asyncio.to_thread(processes_inside, place))
    killed = kill_process_groups(sorted(pids))
    if killed:
        log.warning("run %s: killed %d orphaned task process group(s)", recorder.run_id, killed)
    for entry in await worktrees.list_porcelain():
        path = Path(entry.path)
        if path.parent == run_root and entry.locked is not None:
            # A `worktree add` killed midway: locked "initializing", never used.
            await worktrees.remove(Worktree(path, None, path.name, entry.head or ""))
    await git.run_admin("worktree", "prune")
    await _clear_unrecorded(recorder, git, worktrees, run_root)


async def _clear_unrecorded(
    recorder: RunRecorder, git: Git, worktrees: WorktreeManager, run_root: Path
) -> None:
    """A task directory made for an attempt the history does not have: the driver died
    between making it and recording it (a ready run makes worktrees while other tasks
    record), so no task process ever ran in it. Remove it, and the task branch a first
    attempt made with it while that branch holds nothing the run does not have."""
    state = recorder.state
    for task in state.tasks.values():
        recorded = task.attempt or 0
        for path in run_root.glob(f"{task.task_id}.*"):
            attempt = path.name.removeprefix(f"{task.task_id}.")
            if attempt.isdigit() and int(attempt) > recorded:
                log.warning("run %s: removing %s, never recorded", recorder.run_id, path)
                await asyncio.to_thread(task_dirs.remove_quietly, path)
        if recorded:
            continue
        ref = f"refs/heads/{worktrees.task_branch(recorder.run_id, task.task_id)}"
        target = await git.ref_target(ref)
        reached = state.result_commit or state.base_commit
        if target is not None and reached and await git.is_ancestor(target, reached):
            await git.run("update-ref", "-d", ref, target, check=False)
