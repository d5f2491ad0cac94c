"""`plait clean`: remove what finished runs left behind in their repositories.

What goes: integration worktrees (scratch checkouts), and every worktree and branch of a run
whose work is already on the run's base branch (or that holds no work at all). What stays,
unless `discard_unlanded` is given: work that did not land, i.e. a branch or worktree with a
commit the base branch does not have (a failed task, a culprit, a conflict, a tested result
that was never landed) or a worktree with changes nobody committed. Runs that are still
active are never touched. Removing a stopped or failed run's unlanded result makes it
impossible to land or resume: that is why it takes `discard_unlanded`.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from plait.domain.ids import run_branches
from plait.domain.run import RunState
from plait.domain.statuses import ENDED_RUN
from plait.execution.git.cli import Git, GitError
from plait.execution.git.merging import is_clean
from plait.execution.git.porcelain import WorktreeEntry
from plait.execution.worktrees import own_files
from plait.execution.worktrees.manager import (
    INTEGRATION_DIR,
    LEGACY_ROOT,
    Worktree,
    WorktreeManager,
)
from plait.execution.worktrees.pool import WorktreePool


@dataclass
class CleanReport:
    removed: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # each says why, and how to remove it anyway
    skipped: list[str] = field(default_factory=list)  # runs not looked at, and why


async def clean_runs(
    runs: Iterable[RunState], *, discard_unlanded: bool = False, dry_run: bool = False
) -> CleanReport:
    report = CleanReport()
    for state in runs:
        if state.status not in ENDED_RUN:
            report.skipped.append(f"run {state.run_id} is {state.status}: left alone")
            continue
        repo = Path(state.repo_path or "")
        if not state.repo_path or not repo.is_dir():
            report.skipped.append(f"run {state.run_id}: its repository {repo} is gone")
            continue
        try:
            await _clean_run(state, Git(repo), report, discard_unlanded, dry_run)
        except (GitError, OSError) as exc:
            report.skipped.append(f"run {state.run_id}: {exc}")
    return report


async def _clean_run(
    state: RunState, git: Git, report: CleanReport, discard: bool, dry_run: bool
) -> None:
    root = (
        Path(state.worktree_root) if state.worktree_root else await git.common_dir() / LEGACY_ROOT
    )
    manager = WorktreeManager(git, root)
    run_dir = (await manager.root()) / state.run_id
    prefix = f"refs/heads/{run_branches(state.run_id)}"
    base_tip = await git.ref_target(f"refs/heads/{state.base_branch}")
    kept_before = len(report.kept)

    async def on_base(commit: str) -> bool:
        try:
            return base_tip is not None and await git.is_ancestor(commit, base_tip)
        except GitError:  # a commit only a task's own repository has
            return False

    checked_out: set[str] = set()  # the branches of kept worktrees stay with them
    for entry in await manager.list_porcelain():
        path = entry.path.resolve()
        branch = entry.branch or ""
        if path.parent != run_dir and not branch.startswith(prefix):
            continue
        why = await _unlanded_worktree(git, entry, on_base)
        if path.name == INTEGRATION_DIR or why is None or discard:
            report.removed.append(f"worktree {path}")
            if not dry_run:
                await manager.remove(Worktree(path, entry.branch_name, path.name, entry.head or ""))
        else:
            report.kept.append(f"worktree {path}: {why}")
            checked_out.add(branch)
    listed = await git.run("for-each-ref", "--format=%(refname) %(objectname)", prefix)
    for line in listed.stdout.splitlines():
        ref, _, commit = line.partition(" ")
        name = ref.removeprefix("refs/heads/")
        if ref in checked_out:
            report.kept.append(f"branch {name}: its worktree is kept")
        elif await on_base(commit) or discard:
            report.removed.append(f"branch {name}")
            if not dry_run:
                await git.run("update-ref", "-d", ref, commit)
        else:
            report.kept.append(f"branch {name}: its work is not on {state.base_branch}")
    # The attempts' kept work (refs/plait/kept/<run>/...): gone only with --discard.
    kept_refs = await git.run(
        "for-each-ref", "--format=%(refname) %(objectname)", f"refs/plait/kept/{state.run_id}/"
    )
    for line in kept_refs.stdout.splitlines():
        ref, _, commit = line.partition(" ")
        if discard:
            report.removed.append(f"ref {ref}")
            if not dry_run:
                await git.run("update-ref", "-d", ref, commit)
        else:
            report.kept.append(f"ref {ref}: an attempt's work plait kept")
    await _drain_pool(manager, report, dry_run)
    if not dry_run:
        await git.run_admin("worktree", "prune")
        _remove_if_empty(run_dir)
        if len(report.kept) == kept_before:
            _remove_logs(state, report)


async def _drain_pool(manager: WorktreeManager, report: CleanReport, dry_run: bool) -> None:
    """The repository's idle pooled task repositories (`plait run` keeps them for the next
    run): detached, every commit on a ref, nothing of anyone's in them. A busy slot (a
    task's, or kept work) is left alone."""
    pool = WorktreePool(manager, max_idle=0)
    await pool.recover()
    if pool.idle:
        report.removed.append(f"{pool.idle} idle pooled worktree(s) in {await pool.directory()}")
        if not dry_run:
            await pool.drain()


async def _unlanded_worktree(
    git: Git, entry: WorktreeEntry, on_base: Callable[[str], Awaitable[bool]]
) -> str | None:
    """Why this worktree holds work the base does not have, or None if it holds none."""
    if not entry.path.exists():
        return None  # git's record of a directory that is gone
    if entry.own_repository and (why := own_files.problem(entry.path)) is not None:
        return f"it is not the repository plait made ({why}): no git runs in it"
    if not await is_clean(git, entry.path):
        return "it has changes nobody committed"
    if entry.head and not await on_base(entry.head):
        return "its commit is not on the base branch"
    return None


def _remove_if_empty(directory: Path) -> None:
    with contextlib.suppress(OSError):  # not empty (kept work), or already gone
        directory.rmdir()


def _remove_logs(state: RunState, report: CleanReport) -> None:
    """The run's log directory, once nothing else of the run is left: each attempt's log
    path names it (`<log root>/<run id>/`); its events keep the bounded output."""
    paths = {
        Path(a.log_path).parent
        for task in state.tasks.values()
        for a in task.attempts
        if a.log_path
    }
    for directory in paths:
        if directory.name == state.run_id and directory.is_dir():
            shutil.rmtree(directory, ignore_errors=True)
            report.removed.append(f"logs {directory}")
