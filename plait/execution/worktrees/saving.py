"""plait's commit of a task's work, onto the task's branch and nowhere else.

`save` commits the task's files on top of its HEAD (worktrees/isolated.py does the git
work in the task's repository) and moves the task branch in the user's repository to that
commit by compare-and-swap; `keep` does the same for a failed or interrupted attempt, at
its kept ref `refs/plait/kept/<run>/<task>/<attempt>`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from plait.execution.git.cli import Git
from plait.execution.git.refs import validate_ref_name
from plait.execution.worktrees import isolated
from plait.execution.worktrees.isolated import Saved

__all__ = ["Worktree", "keep", "save"]


class Worktree(Protocol):
    """What saving needs of a task's worktree (manager.Worktree has it)."""

    @property
    def path(self) -> Path: ...
    @property
    def branch(self) -> str | None: ...
    @property
    def base_commit(self) -> str: ...


async def save(
    git: Git,
    worktree: Worktree,
    message: str,
    *,
    excludes: Path | None = None,
    drop: Sequence[str] = (),
    kept_ref: str | None = None,
) -> Saved:
    """Commit the task's files on its HEAD (its own commits stay in the result), and move
    the task's branch to that commit, explicitly: never whatever branch HEAD is on.

    Hooks and signing are skipped: the user's hooks must not block or alter a task's
    result. `excludes` (from `write_excludes`) keeps untracked tool files and byproducts
    out: as ignore rules, they leave tracked files and files the task added itself
    alone. `drop` paths (copy_ignored secrets) are never committed. Commits the task made
    that the result does not reach go to `kept_ref`. NestedRepository: the task made a
    repository inside its checkout (nothing is committed then).
    """
    identity = await git.identity_options()
    saved = await isolated.save(
        git,
        worktree.path,
        base=worktree.base_commit,
        message=message,
        identity=identity,
        excludes=excludes,
        drop=drop,
    )
    lines = ""
    if worktree.branch and saved.commit is not None:
        lines += await _branch_update(git, worktree, saved.commit)
    if kept_ref is not None and saved.kept is not None:
        lines += f"update {validate_ref_name(kept_ref)} {saved.kept}\n"
    if lines:
        await git.run("update-ref", "--stdin", input=lines)
    return saved


async def keep(
    git: Git,
    worktree: Worktree,
    kept_ref: str,
    message: str,
    *,
    excludes: Path | None = None,
    drop: Sequence[str] = (),
) -> str | None:
    """A failed or interrupted attempt's work, committed and uncommitted, as one commit
    at `kept_ref`, the task branch (of a task repository) moved there too; None when it
    holds nothing at all beyond its base. Nested repositories are left out (their files
    stay on disk)."""
    identity = await git.identity_options()
    saved = await isolated.save(
        git,
        worktree.path,
        base=worktree.base_commit,
        message=message,
        identity=identity,
        excludes=excludes,
        drop=drop,
        allow_nested=True,
    )
    commit = saved.commit
    if saved.kept is not None:
        parents = [c for c in (commit, saved.kept) if c is not None]
        argv = [*identity, "commit-tree", f"{saved.kept}^{{tree}}"]
        for parent in parents:
            argv += ["-p", parent]
        made = await git.run(*argv, "-m", message)
        commit = git.made_commit(made.stdout)
    if commit is None:
        return None
    lines = f"update {validate_ref_name(kept_ref)} {commit}\n"
    # The task branch moves too, but not where a linked worktree (a pool slot an older
    # plait made) has it checked out: that worktree is left exactly as the task left it.
    if worktree.branch and isolated.is_isolated(worktree.path):
        lines += await _branch_update(git, worktree, commit)
    await git.run("update-ref", "--stdin", input=lines)
    return commit


# Where plait last put each task branch of a task repository (its base, an earlier save):
# the compare-and-swap's old value without a git process to read it.
BRANCH_TIPS: dict[tuple[Path, str], str] = {}


async def _branch_update(git: Git, worktree: Worktree, commit: str) -> str:
    """The compare-and-swap of the task branch, as an `update-ref --stdin` line: from
    where it is now (its base, an earlier save, or a linked worktree's own commits) to
    `commit`, whatever branch the task's HEAD is on."""
    ref = f"refs/heads/{validate_ref_name(worktree.branch or '')}"
    key = (worktree.path, ref)
    old = BRANCH_TIPS.pop(key, None) if isolated.is_isolated(worktree.path) else None
    old = old or await git.ref_target(ref) or "0" * 40
    BRANCH_TIPS[key] = commit
    return f"update {ref} {commit} {old}\n"
