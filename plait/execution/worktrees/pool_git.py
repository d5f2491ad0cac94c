"""git primitives for recycling a worktree in place (used by `worktree_pool`).

Every command here runs inside one worktree and touches only that worktree's
index, HEAD and files, plus the ref of the branch it checks out; none of them
adds or removes a worktree, so none needs the per-repository admin lock.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

from plait.domain.plan.paths import path_parts
from plait.execution.git.cli import Git
from plait.execution.worktrees.clean_tree import anchored_pattern, clean_argv, remove_caches

# Root-level files (build configuration, lockfiles) stay in every sparse
# checkout, as in git's cone mode; directories appear only when declared.
_ROOT_FILES = ("/*", "!/*/")


def sparse_patterns(paths: Sequence[str]) -> tuple[str, ...] | None:
    """Non-cone sparse-checkout patterns for declared files and directories.

    None means a full checkout: no paths, or one of them is the repository root.
    Each path is anchored at the root and matched literally (glob characters escaped).
    """
    anchored: list[str] = []
    for path in paths:
        if not path_parts(path):
            return None
        anchored.append(anchored_pattern(path))
    return (*_ROOT_FILES, *sorted(set(anchored))) if anchored else None


async def add(git: Git, path: Path, branch: str, sha: str, sparse: Sequence[str] | None) -> None:
    """A new worktree at `path` on `branch` reset to `sha`; sparse when patterns are given.

    Always `-B`: an add that loses git's commondir race has already created the
    branch, so only -B makes the retry idempotent.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    if sparse is None:
        await git.run_admin("worktree", "add", "--quiet", "-B", branch, "--", str(path), sha)
        return
    argv = ("worktree", "add", "--quiet", "--no-checkout", "-B", branch, "--", str(path), sha)
    await git.run_admin(*argv)
    await set_sparse(git, path, sparse)
    await git.run("reset", "--quiet", "--hard", cwd=path)


async def set_sparse(git: Git, path: Path, sparse: Sequence[str] | None) -> None:
    """Apply sparse patterns to the worktree, or go back to a full checkout (None).

    The first sparse worktree makes git set `extensions.worktreeConfig` in the
    repository's config, so the patterns stay local to this worktree.
    """
    if sparse is None:
        await git.run("sparse-checkout", "disable", cwd=path)
    else:
        await git.run("sparse-checkout", "set", "--no-cone", "--", *sparse, cwd=path)


async def move(git: Git, path: Path, branch: str, sha: str) -> None:
    """Check out `branch` reset to `sha`, discarding local changes; only files that differ
    between the current and the new commit are written."""
    await git.run("checkout", "--quiet", "--force", "-B", branch, sha, cwd=path)


async def detach(git: Git, path: Path) -> None:
    """Detach HEAD where it is (freeing the branch); drop uncommitted changes to tracked files."""
    await git.run("checkout", "--quiet", "--force", "--detach", cwd=path)


async def clean(git: Git, path: Path, *, keep_ignored: bool, keep: Sequence[str] = ()) -> None:
    """Delete untracked files and directories (nested repositories too); ignored ones as well
    unless `keep_ignored`, but for the `keep` paths, whose caches go (see clean_tree)."""
    if keep_ignored:
        await git.run("clean", "-ffdq", cwd=path)
        return
    await git.run(*clean_argv(keep), cwd=path)
    if keep:
        await asyncio.to_thread(remove_caches, path, keep)


async def unsaved_commits(git: Git, path: Path) -> str | None:
    """Why recycling the worktree could lose a commit, or None when every branch-less commit
    is accounted for: HEAD must name a commit reachable from a branch, tag or remote ref."""
    argv = ("rev-list", "--max-count=1", "HEAD", "--not", "--branches", "--tags", "--remotes")
    result = await git.run(*argv, cwd=path, check=False)
    if result.returncode != 0:
        return f"HEAD names no commit ({result.stderr.strip()})"
    commit = result.stdout.strip()
    return f"commit {commit} is on no branch, tag or remote ref" if commit else None


async def uncommitted_changes(git: Git, path: Path) -> bool:
    """Whether the worktree holds changes no commit has: modified, staged or untracked files
    (ignored ones do not count). True as well when git cannot tell."""
    argv = ("--no-optional-locks", "status", "--porcelain", "-z", "--untracked-files=normal")
    result = await git.run(*argv, cwd=path, check=False)
    return result.returncode != 0 or bool(result.stdout.strip("\0"))


async def isolation_problems(
    git: Git,
    path: Path,
    branch: str,
    sha: str,
    *,
    keep_ignored: bool,
    sparse: bool,
    keep: Sequence[str] = (),
) -> list[str]:
    """Why the worktree is not exactly `sha` on `branch` with nothing left from earlier work.

    Checks HEAD and branch, that `git status` reports nothing (ignored files too unless
    `keep_ignored`; the `keep` paths are allowed), and that no index entry is flagged
    assume-unchanged, or skip-worktree outside a sparse checkout: such flags hide a stale
    file from `git status`.
    """
    kept = [path_parts(k) for k in keep]
    # Both only read: no optional index refresh, so they can run side by side.
    argv = ["--no-optional-locks", "status", "--porcelain=v2", "-z", "--branch"]
    argv += ["--untracked-files=all", "--ignored=no" if keep_ignored else "--ignored=matching"]
    status, flagged = await asyncio.gather(
        git.run(*argv, cwd=path), git.run("ls-files", "-v", "-z", cwd=path)
    )
    problems: list[str] = []
    for record in filter(None, status.stdout.split("\0")):
        if record.startswith("# branch.oid ") and record.split()[-1] != sha:
            problems.append(f"HEAD is {record.split()[-1]}, expected {sha}")
        elif record.startswith("# branch.head ") and record.split()[-1] != branch:
            problems.append(f"on {record.split()[-1]}, expected {branch}")
        elif record.startswith("! ") and _inside(path_parts(record[2:]), kept):
            continue
        elif not record.startswith("#"):
            problems.append(f"left over: {record}")
    for entry in filter(None, flagged.stdout.split("\0")):
        tag = entry[:1]
        if tag.islower() or (tag == "S" and not sparse):
            problems.append(f"index entry flagged {tag!r}: {entry[2:]}")
    return problems


def _inside(parts: tuple[str, ...], kept: Sequence[tuple[str, ...]]) -> bool:
    return any(parts[: len(k)] == k for k in kept)
