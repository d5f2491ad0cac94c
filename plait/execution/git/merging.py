"""Merge task commits onto an integration tip without any working tree, and land the result.

Merges are `git merge-tree --write-tree` + `git commit-tree`: only objects are
written, so neither the user's checkout nor any task worktree is touched.
Landing never resets, stashes or overwrites anything: a ref moves by
compare-and-swap, and a checked-out branch moves only by `merge --ff-only` in
its clean worktree.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from plait.execution.git.cli import Git, GitError, UnknownRevisionError
from plait.execution.git.porcelain import WorktreeEntry, parse_worktree_list
from plait.execution.git.refs import validate_ref_name

__all__ = [
    "ChainResult",
    "ConflictInfo",
    "LandOutcome",
    "LandResult",
    "MergeError",
    "MergeStep",
    "fast_forward_checkout",
    "find_checkout",
    "is_clean",
    "land",
    "merge_chain",
    "update_ref_cas",
]


class MergeError(Exception):
    """A merge chain that cannot even start (e.g. a task commit that does not exist)."""


@dataclass(frozen=True)
class MergeStep:
    task_id: str
    commit: str
    merge_commit: str  # the chain tip after this task; equal to the previous tip if already in


@dataclass(frozen=True)
class ConflictInfo:
    task_id: str
    commit: str
    files: tuple[str, ...]


@dataclass(frozen=True)
class ChainResult:
    onto: str
    steps: tuple[MergeStep, ...]
    conflicts: tuple[ConflictInfo, ...]

    @property
    def tip(self) -> str:
        return self.steps[-1].merge_commit if self.steps else self.onto

    def tip_after(self, count: int) -> str:
        """The tip after the first `count` merged steps (0 = `onto`): what bisection tests."""
        return self.steps[count - 1].merge_commit if count else self.onto


async def _verified(git: Git, task_id: str, commit: str) -> str:
    try:
        return await git.rev_parse(commit)
    except UnknownRevisionError as e:
        raise MergeError(f"task {task_id!r}: commit {commit!r} does not exist") from e


async def _merge_tree(git: Git, tip: str, commit: str) -> tuple[str, tuple[str, ...]]:
    """(tree, conflicted files); with -z the output is `TREE\\0` then one `PATH\\0` per file."""
    argv = ("merge-tree", "--write-tree", "--name-only", "--no-messages", "-z", tip, commit)
    result = await git.run(*argv, check=False)
    if result.returncode not in (0, 1):
        raise GitError(["git", *argv], result.returncode, result.stderr)
    tree, *files = [field for field in result.stdout.split("\0") if field]
    return tree, tuple(dict.fromkeys(files)) if result.returncode == 1 else ()


async def _tree_of(git: Git, commit: str) -> str:
    return (await git.run("rev-parse", "--verify", f"{commit}^{{tree}}")).stdout.strip()


async def _commit_merge(git: Git, tree: str, tip: str, commit: str, task_id: str) -> str:
    identity = await git.identity_options()
    message = f"plait: merge task {task_id}"
    argv = ("commit-tree", tree, "-p", tip, "-p", commit, "-m", message)
    result = await git.run(*identity, "-c", "commit.gpgsign=false", *argv)
    # The next step's ancestry check and the landing use this commit: no rev-parse for it.
    return git.made_commit(result.stdout)


async def merge_chain(git: Git, onto: str, branches: Sequence[tuple[str, str]]) -> ChainResult:
    """Merge each (task_id, commit) in order onto `onto`, skipping the ones that conflict.

    Every commit is verified before anything is merged, because merge-tree
    exits 1 for an unknown ref exactly as it does for a conflict.
    """
    tip = base = await git.rev_parse(onto)
    verified = [(task_id, await _verified(git, task_id, c)) for task_id, c in branches]
    steps: list[MergeStep] = []
    conflicts: list[ConflictInfo] = []
    tip_tree: str | None = None  # known once a step made the tip
    for task_id, commit in verified:
        tree, files = await _merge_tree(git, tip, commit)
        if files:
            conflicts.append(ConflictInfo(task_id, commit, files))
            continue
        # A commit already in the tip merges to the tip's own tree; only then is the
        # ancestry asked (a change equal to one merged before gives that tree too, and is
        # merged), so the usual step costs no `merge-base`.
        if tip_tree is None:
            tip_tree = await _tree_of(git, tip)
        if tree == tip_tree and await git.is_ancestor(commit, tip):
            steps.append(MergeStep(task_id, commit, tip))
            continue
        tip = await _commit_merge(git, tree, tip, commit, task_id)
        tip_tree = tree
        steps.append(MergeStep(task_id, commit, tip))
    return ChainResult(base, tuple(steps), tuple(conflicts))


def _full_ref(ref: str) -> str:
    if not validate_ref_name(ref).startswith("refs/"):
        raise ValueError(f"{ref!r}: give a full ref such as refs/heads/main")
    return ref


async def update_ref_cas(git: Git, ref: str, new: str, old: str) -> bool:
    """Point `ref` at `new` only if it still points at `old`; False when it has moved."""
    ref, new_sha, old_sha = _full_ref(ref), await git.rev_parse(new), await git.rev_parse(old)
    result = await git.run("update-ref", "-m", "plait: land", ref, new_sha, old_sha, check=False)
    if result.returncode == 0:
        return True
    if await git.ref_target(ref) != old_sha:
        return False
    raise GitError(["git", "update-ref", ref, new_sha, old_sha], result.returncode, result.stderr)


async def find_checkout(git: Git, branch: str) -> WorktreeEntry | None:
    """The worktree that has `branch` (short name) checked out, if any."""
    ref = f"refs/heads/{validate_ref_name(branch)}"
    listing = await git.run("worktree", "list", "--porcelain", "-z")
    return next((e for e in parse_worktree_list(listing.stdout) if e.branch == ref), None)


async def is_clean(git: Git, path: Path) -> bool:
    """No staged, unstaged or untracked changes (ignored files do not count)."""
    result = await git.run(
        "status",
        "--porcelain=v1",
        "-z",
        "--untracked-files=all",
        "--ignore-submodules=none",
        cwd=path,
        env={"GIT_OPTIONAL_LOCKS": "0"},  # do not take index.lock in the user's checkout
    )
    return result.stdout == ""


class LandOutcome(enum.Enum):
    REF_UPDATED = "ref_updated"  # branch not checked out: moved by compare-and-swap
    CHECKOUT_FAST_FORWARDED = "checkout_fast_forwarded"  # merge --ff-only in its worktree
    BASE_MOVED = "base_moved"  # the branch is no longer at `old`: nothing changed
    CHECKOUT_DIRTY = "checkout_dirty"  # checked out with local changes: nothing changed
    # git refused in that checkout for another reason (e.g. a stale index.lock): nothing
    # changed; `detail` has git's message
    CHECKOUT_FAILED = "checkout_failed"
    # the fast-forward would overwrite files of the user's that git does not track (ignored
    # or untracked): nothing changed; `detail` lists them
    CHECKOUT_BLOCKED = "checkout_blocked"
    # the branch moved to a commit that does not descend from `old` (a reset, a rewrite):
    # the user's decision, so nothing is merged onto it
    BASE_REWOUND = "base_rewound"


@dataclass(frozen=True)
class LandResult:
    outcome: LandOutcome
    branch: str
    new: str
    worktree: Path | None = None
    detail: str = ""

    @property
    def landed(self) -> bool:
        return self.outcome in (LandOutcome.REF_UPDATED, LandOutcome.CHECKOUT_FAST_FORWARDED)


async def land(git: Git, branch: str, new: str, old: str) -> LandResult:
    """Move `branch` from `old` to `new` without touching anyone's uncommitted work.

    Not checked out: compare-and-swap on the ref. Checked out: only if that
    worktree is clean and at `old`, by `merge --ff-only` there (an update-ref
    would leave that checkout's index and files stale).
    """
    if validate_ref_name(branch).startswith("refs/"):
        raise ValueError(f"{branch!r}: give the short branch name, e.g. main")
    new_sha, old_sha = await git.rev_parse(new), await git.rev_parse(old)
    entry = await find_checkout(git, branch)
    if entry is None:
        moved = await update_ref_cas(git, f"refs/heads/{branch}", new_sha, old_sha)
        outcome = LandOutcome.REF_UPDATED if moved else LandOutcome.BASE_MOVED
        return LandResult(outcome, branch, new_sha)
    return await fast_forward_checkout(git, entry.path, branch, new_sha, old_sha)


async def fast_forward_checkout(
    git: Git, path: Path, branch: str, new: str, old: str
) -> LandResult:
    if not await is_clean(git, path):
        detail = f"{path} has local changes; land later with: git merge --ff-only {new}"
        return LandResult(LandOutcome.CHECKOUT_DIRTY, branch, new, path, detail)
    if await git.rev_parse("HEAD", cwd=path) != old:
        return LandResult(LandOutcome.BASE_MOVED, branch, new, path)
    # --no-overwrite-ignore: git refuses to clobber an ignored file (a .env, local notes)
    # at a path the result adds, as it always does for an untracked one.
    argv = ("merge", "--ff-only", "--no-overwrite-ignore", "--quiet", new)
    result = await git.run(*argv, cwd=path, check=False)
    if result.returncode != 0 and "would be overwritten" in result.stderr:
        blocked = [line.strip() for line in result.stderr.splitlines() if line[:1] == "\t"]
        detail = ", ".join(blocked[:10]) + (", ..." if len(blocked) > 10 else "")
        return LandResult(LandOutcome.CHECKOUT_BLOCKED, branch, new, path, detail)
    if result.returncode != 0:
        # ff-only refuses rather than overwrite: the user moved HEAD or created
        # an untracked file the merge would clobber since we looked, or git itself
        # could not work there (a lock file left by a killed git).
        detail = result.stderr.strip()
        if await git.rev_parse("HEAD", cwd=path) != old:
            return LandResult(LandOutcome.BASE_MOVED, branch, new, path, detail)
        if not await is_clean(git, path):
            return LandResult(LandOutcome.CHECKOUT_DIRTY, branch, new, path, detail)
        return LandResult(LandOutcome.CHECKOUT_FAILED, branch, new, path, detail)
    return LandResult(LandOutcome.CHECKOUT_FAST_FORWARDED, branch, new, path)
