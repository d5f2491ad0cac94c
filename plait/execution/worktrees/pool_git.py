"""git primitives for recycling a pooled slot in place (used by pool.py).

A slot is a task repository of its own (isolated.py): every command here runs inside it and
touches only its index, HEAD and files; none touches the user's repository.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from plait.domain.plan.paths import path_parts
from plait.execution.git.cli import Git
from plait.execution.worktrees import isolated, own_files, task_dirs
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


async def renew(
    git: Git,
    path: Path,
    branch: str,
    sha: str,
    *,
    alias: str | None,
    sparse: Sequence[str] | None = None,
) -> None:
    """A pooled slot's repository made anew for its next task, as `isolated.create` makes one: its
    HEAD, refs, reflogs, config, hooks and info are gone, its alternates written again, and
    only its index and objects kept, so the checkout writes just the files that differ from
    the previous task's (and `git clean` then takes what is left). ForeignRepository first,
    when the previous task left a repository that is not plait's (see own_files)."""
    own_files.check(path)
    own = path / ".git"
    for entry in list(os.scandir(own)):
        if entry.name in _KEPT_ON_RENEW:
            continue
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path)
        else:
            os.unlink(entry.path)
    await isolated.own_repository(git, await git.common_dir(), path, branch, sha, alias)
    await isolated.check_out(git, path, sparse)


_KEPT_ON_RENEW = ("index", "objects")


async def clean(git: Git, path: Path, *, keep_ignored: bool, keep: Sequence[str] = ()) -> None:
    """Delete untracked files and directories (nested repositories too); ignored ones as well
    unless `keep_ignored`, but for the `keep` paths, whose caches go (see clean_tree)."""
    if keep_ignored:
        await git.run("clean", "-ffdq", cwd=path)
        return
    await git.run(*clean_argv(keep), cwd=path)
    if keep:
        await asyncio.to_thread(remove_caches, path, keep)


async def unsaved_commits(git: Git, path: Path, *, linked: bool = False) -> str | None:
    """Why recycling the slot could lose a commit, or None when every commit it holds is
    accounted for: HEAD must name a commit, and nothing its HEAD, branches, tags or HEAD's
    reflog reach may be missing from every ref of the user's repository (plait's save
    fetches the task's result and the commits it kept there). Run it only on a slot that
    holds plait's own repository (own_files). One git process when the slot's tips, read
    from its files, are all reached in the user's repository (`_all_reached`); else two."""
    if not linked and await _all_reached(git, path):
        return None
    argv: tuple[str, ...]
    given = None
    if linked:  # a linked slot an older plait made shares the user's refs
        argv = ("rev-list", "--max-count=1", "HEAD", "--not", "--branches", "--tags", "--remotes")
    else:  # nothing its own refs, HEAD or reflog reach but the user's refs do not
        argv = ("rev-list", "--max-count=1", "--stdin", "HEAD", "--branches", "--tags", "--reflog")
        given = "".join(f"^{commit}\n" for commit in await _users_commits(git))
    result = await git.run(*argv, cwd=path, check=False, input=given)
    if result.returncode != 0:
        return f"HEAD names no commit ({result.stderr.strip()})"
    commit = result.stdout.strip()
    return f"commit {commit} is on no branch, tag or ref of the repository" if commit else None


async def _all_reached(git: Git, path: Path) -> bool:
    """True when every commit the slot's HEAD, refs and reflogs name (read from its files,
    see `_tips`) and everything they reach is reached by a ref of the user's repository: one
    `rev-list` there instead of two git processes. False when that cannot be told (a tip
    the user's store lacks, such as a commit the task made itself, or files plait cannot
    read): then `unsaved_commits` asks the slot's own repository, as it always did."""
    tips = _tips(path / ".git")
    if tips is None:
        return False
    argv = ("rev-list", "--max-count=1", *sorted(tips), "--not", "--glob=refs/*")
    result = await git.run(*argv, check=False)  # in the user's repository: no slot config
    return result.returncode == 0 and not result.stdout.strip()


_MAX_TIPS = 256  # more (a long reflog): the slot's own rev-list reads them, as before
_HEX = frozenset("0123456789abcdef")


def _tips(own: Path) -> set[str] | None:
    """The commits the slot's HEAD, loose and packed refs and reflogs name, from its files:
    a superset of what `rev-list HEAD --branches --tags --reflog` starts from there. None
    when it may not be (HEAD names no commit, a linked worktree of its own, a symbolic
    link, a file that is not what git's files backend writes), or too many."""
    tips: set[str] = set()
    try:
        if os.path.lexists(own / "worktrees") or (own / "HEAD").is_symlink():
            return None
        head = (own / "HEAD").read_text(encoding="ascii").strip()
        if head.startswith("ref: "):
            head = task_dirs.head_of(own.parent)[1] or ""
        if not _is_sha(head):
            return None
        tips.add(head)
        for top, kind in (("refs", "ref"), ("logs", "log")):
            if top == "logs" and not os.path.lexists(own / top):
                continue  # no reflog at all (core.logAllRefUpdates=false)
            for directory, subdirs, names in os.walk(own / top, onerror=_raise):
                for name in (*subdirs, *names):
                    if os.path.islink(os.path.join(directory, name)):
                        return None
                for name in names:
                    text = Path(directory, name).read_text(encoding="utf-8", errors="replace")
                    if kind == "ref":
                        text = text.strip()
                        if not _is_sha(text):  # a symbolic ref too: it may name a file
                            # outside refs/ (ORIG_HEAD) that git would read for it
                            return None
                        tips.add(text)
                        continue
                    for line in text.splitlines():
                        old, new, *_ = line.split(" ", 2)
                        if not (_is_sha(old) and _is_sha(new)):
                            return None
                        tips.update(sha for sha in (old, new) if sha.strip("0"))
        if os.path.lexists(own / "packed-refs"):
            for line in (own / "packed-refs").read_text(encoding="utf-8").splitlines():
                if line.startswith("#"):
                    continue
                sha = line.removeprefix("^").split(" ", 1)[0]
                if not _is_sha(sha):
                    return None
                tips.add(sha)
    except (OSError, ValueError):
        return None
    return tips if len(tips) <= _MAX_TIPS else None


def _raise(error: OSError) -> None:
    raise error  # a directory os.walk cannot read: its refs would go unseen


def _is_sha(text: str) -> bool:
    return len(text) in (40, 64) and set(text) <= _HEX


async def _users_commits(git: Git) -> set[str]:
    """The commits the user's repository's refs name (tags peeled); read there, not through
    the slot's config (`--alternate-refs` would run its `core.alternateRefsCommand`)."""
    fields = "%(objecttype):%(objectname):%(*objecttype):%(*objectname)"
    listed = await git.run("for-each-ref", f"--format={fields}")
    commits = set()
    for line in listed.stdout.splitlines():
        kind, sha, peeled_kind, peeled = line.split(":")
        if kind == "commit":
            commits.add(sha)
        elif peeled_kind == "commit":
            commits.add(peeled)
    return commits


def detach(path: Path) -> None:
    """An idle slot's HEAD detached where it is (a file write: the repository is plait's),
    so that a later process sees it idle (`recover`)."""
    _, head = task_dirs.head_of(path)
    if head is None:
        raise OSError(f"{path}: HEAD names no commit")
    (path / ".git" / "HEAD").write_text(f"{head}\n")


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
