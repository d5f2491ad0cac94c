"""A pool of task repositories for one repository, reused across tasks and runs.

A slot is a task repository of its own, made as a fresh one is (isolated.py: `git init`,
the user's objects read through alternates): the task's HEAD, refs, config and hooks are
its alone, so a pooled task is contained exactly as a fresh one. What the pool saves is the
checkout: a fresh task repository writes every file of the repository; a recycled slot is
made anew (`pool_git.renew`: everything but its index and objects; its git dir written as
the directory's first `git init` wrote it, repo_files.py) and checked out at the next
task's base, which writes only the files that differ, then cleaned. Its work is saved
as a fresh one's is (saving.py: commit-tree, fetch into the user's repository,
compare-and-swap of the task branch).

    pool = WorktreePool(WorktreeManager(git), max_idle=4)
    busy = await pool.recover()                # once, at start: idle slots come back;
                                               # slots a crashed task held are returned
    wt = await pool.acquire(run_id, task_id, attempt, base_commit,
                            keep=plan.keep_ignored, sparse_paths=task.files or None)
    ... run the task in wt.path, then WorktreeManager.commit_all(wt, message) ...
    outcome = await pool.release(wt)           # POOLED, REMOVED or KEPT
    await pool.remove(wt, delete_branch=True)  # instead of release: gone for good
    await pool.drain()                         # when the service stops

Guarantees:
- Isolation: an acquired slot is on `branch` (in its own repository, and the same branch in
  the user's at `base_commit`), reset to `base_commit`, and `git status` reports nothing: no
  file an earlier task created, modified or deleted survives, nor any ref, config, hook or
  reflog of its. Untracked and ignored files are deleted, but for the `keep` paths (the
  plan's `keep_ignored`: a setup's .venv/, node_modules/), which lose their bytecode and
  pytest caches (see clean_tree); with `keep_ignored=True` every file the new base ignores
  stays, caches included. A recycled slot that fails this check is removed and replaced by
  a fresh one (counted in `discarded`), and so is one whose repository the previous task
  replaced by a way into another (own_files): no git runs in that one.
- No lost commit: `release` keeps a slot whose HEAD, branches, tags or reflog reach a commit
  no ref of the user's repository reaches (outcome KEPT: untouched, still leased, so it can
  be released again once the commit is saved), or whose repository is not plait's any more
  (its files are the task's work). Checked with one `rev-list` in the user's repository
  when the slot's HEAD, refs and reflogs (read from its files) name only commits the user's
  store has; otherwise in the slot's repository, against the user's refs
  (pool_git.unsaved_commits). Anything *uncommitted* is discarded on release, as
  `WorktreeManager.remove` would: commit first.
- Safe under concurrent acquire/release from asyncio tasks of one loop: the pool's
  bookkeeping never awaits and each slot is leased to one caller; slots share nothing but
  the user's objects, which they only read.

Layout: slots are `<worktree root>/_pool/<n>`, next to WorktreeManager's run directories
(run ids cannot start with `_`), so `list_porcelain` lists them and crash recovery finds
them. A leased slot is on the task branch; an idle one is detached. Acquired worktrees keep
the task's `worktree_id` (`<run_id>/<task_id>.<attempt>`); their path is the slot's. A slot
an older plait made as a linked worktree is removed when idle, never recycled.

Sparse checkout: with `sparse_paths` (the task's declared files and directories) only those
paths and root-level files are checked out; the slot remembers its patterns, and the next
task prefers a slot with the same ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from plait.execution.git.cli import GitError
from plait.execution.git.refs import validate_ref_name
from plait.execution.worktrees import isolated, own_files, saving, task_dirs
from plait.execution.worktrees import pool_git as ops
from plait.execution.worktrees.manager import POOL_DIR, Worktree, WorktreeError, WorktreeManager

__all__ = ["POOL_DIR", "Released", "WorktreePool"]


class Released(enum.Enum):
    POOLED = "pooled"  # idle in the pool, detached and clean
    REMOVED = "removed"  # the pool was full: the worktree is gone (its branch stays)
    KEPT = "kept"  # it holds commits no ref reaches, or not plait's repository: left as it
    # is, still leased


@dataclass
class _Slot:
    path: Path
    sparse: tuple[str, ...] | None = None  # patterns applied now; None: full checkout
    # A linked worktree an older plait made (as git's own list of worktrees says, not the
    # files in it): removed once released, never recycled. Every other slot must hold
    # plait's own repository (own_files), or no git runs in it.
    linked: bool = False


class WorktreePool:
    """Reusable task worktrees of one repository (see the module docstring)."""

    def __init__(self, manager: WorktreeManager, *, max_idle: int = 4) -> None:
        if max_idle < 0:
            raise ValueError(f"max_idle must be >= 0, got {max_idle}")
        self.manager = manager
        self.git = manager.git
        self.max_idle = max_idle
        self.discarded: list[tuple[Path, str]] = []  # slots dropped while recycling, and why
        self._idle: list[_Slot] = []
        self._leased: dict[Path, _Slot] = {}
        self._reserved: set[Path] = set()

    @property
    def idle(self) -> int:
        return len(self._idle)

    @property
    def leased(self) -> int:
        return len(self._leased)

    async def directory(self) -> Path:
        return await self.manager.root() / POOL_DIR

    async def acquire(
        self,
        run_id: str,
        task_id: str,
        attempt: int,
        base_commit: str,
        branch: str | None = None,
        *,
        keep_ignored: bool = False,
        keep: Sequence[str] = (),
        sparse_paths: Sequence[str] | None = None,
    ) -> Worktree:
        """A worktree on `branch` (default plait/<run>/<task>) reset to `base_commit`.

        Same contract as `WorktreeManager.create`: attempt 1 refuses an existing
        branch, a later attempt resets it.
        """
        branch = branch or self.manager.task_branch(run_id, task_id)
        if validate_ref_name(branch).startswith("refs/"):
            raise WorktreeError(f"branch {branch!r}: give a short branch name, not a full ref")
        task_path = await self.manager.task_path(run_id, task_id, attempt)  # validates the ids
        sha = await self.git.rev_parse(base_commit)
        ref = await self.manager.claim_branch(branch, sha, attempt)
        sparse = ops.sparse_patterns(sparse_paths or ())
        try:
            slot = await self._recycled(branch, sha, keep_ignored, tuple(keep), sparse)
            if slot is None:
                slot = await self._created(branch, sha, sparse)
        except BaseException:
            await self.manager.unclaim_branch(ref, sha, attempt)
            raise
        saving.BRANCH_TIPS[(slot.path, ref)] = sha
        self._leased[slot.path] = slot
        return Worktree(slot.path, branch, f"{run_id}/{task_path.name}", sha)

    async def release(self, worktree: Worktree) -> Released:
        """Take back a worktree from `acquire` (or `recover`) once its work is committed.

        KEPT: it holds a commit no ref reaches, or its repository is not plait's any more
        (no git runs in it then); it stays leased and untouched.
        """
        slot = self._take(worktree)
        saving.BRANCH_TIPS.pop((slot.path, f"refs/heads/{worktree.branch}"), None)
        if not slot.linked and own_files.problem(slot.path) is not None:
            self._leased[slot.path] = slot
            return Released.KEPT
        try:
            unsaved = await ops.unsaved_commits(self.git, slot.path, linked=slot.linked)
        except BaseException:
            self._leased[slot.path] = slot
            raise
        if unsaved:
            self._leased[slot.path] = slot
            return Released.KEPT
        if slot.linked or len(self._idle) >= self.max_idle:
            await self._remove(slot)  # a linked slot of an older plait's: never pooled
            return Released.REMOVED
        try:
            ops.detach(slot.path)
        except OSError as exc:
            await self._discard(slot, f"release failed: {exc}")
            return Released.REMOVED
        self._idle.append(slot)
        return Released.POOLED

    async def remove(self, worktree: Worktree, *, delete_branch: bool = False) -> None:
        """Remove a leased worktree for good instead of pooling it (refused while it holds a
        commit no ref reaches, or what is not plait's repository any more)."""
        slot = self._take(worktree)
        try:
            if why := None if slot.linked else own_files.problem(slot.path):
                raise WorktreeError(f"{worktree.path}: refusing to remove it, {why}")
            if reason := await ops.unsaved_commits(self.git, slot.path, linked=slot.linked):
                raise WorktreeError(f"{worktree.path}: refusing to remove it, {reason}")
            await self.manager.remove(worktree, delete_branch=delete_branch)
        except BaseException:
            self._leased[slot.path] = slot
            raise

    def _take(self, worktree: Worktree) -> _Slot:
        """Un-lease before awaiting anything, so a second release of the same one is refused."""
        slot = self._leased.pop(worktree.path, None)
        if slot is None:
            raise WorktreeError(f"{worktree.path} is not a worktree leased from this pool")
        return slot

    async def drain(self) -> int:
        """Remove every idle worktree; leased ones are left alone. Returns how many went."""
        drained = 0
        while self._idle:
            await self._remove(self._idle.pop())
            drained += 1
        with contextlib.suppress(OSError):
            (await self.directory()).rmdir()  # only when empty
        return drained

    def hold_at_least(self, idle: int) -> None:
        """Keep up to `idle` worktrees idle: a batch holds its worktrees until it lands, so a
        pool as large as the widest batch gives the next batch (and run) every one back."""
        self.max_idle = max(self.max_idle, idle)

    async def take_back(self) -> list[Worktree]:
        """`recover`, then release each busy slot but those holding uncommitted changes or a
        commit no ref reaches: kept work (a failed task's worktree, or one a crash
        interrupted, which its run adopts again) is never recycled. Returns those kept."""
        kept = []
        for busy in await self.recover():
            linked = self._leased[busy.path].linked
            foreign = not linked and own_files.problem(busy.path) is not None
            dirty = foreign or await ops.uncommitted_changes(self.git, busy.path)
            if dirty or await self.release(busy) is Released.KEPT:
                kept.append(busy)
        return kept

    async def recover(self) -> list[Worktree]:
        """Take back the slots an earlier process left (after a restart or crash).

        Detached slots holding no commit the user's repository lacks become idle (a linked
        one an older plait made is removed instead). The others are returned and counted as
        leased: a task was running in them, they hold commits no ref reaches, or what is not
        plait's repository any more. The caller decides, then `release`s them (or removes
        them).
        """
        directory = await self.directory()
        known = {s.path for s in self._idle} | set(self._leased) | self._reserved
        busy: list[Worktree] = []
        for entry in await self.manager.list_porcelain():
            path = entry.path.resolve()
            if path.parent != directory or path in known or entry.head is None:
                continue
            if entry.prunable is not None or entry.locked is not None:
                continue
            linked = not entry.own_repository
            foreign = not linked and own_files.problem(path) is not None
            idle = not foreign and entry.detached
            if idle and not await ops.unsaved_commits(self.git, path, linked=linked):
                slot = _Slot(path, await self._sparse_of(path), linked)
                if linked:
                    await self._remove(slot)
                else:
                    self._idle.append(slot)
                continue
            sparse = None if foreign else await self._sparse_of(path)
            self._leased[path] = _Slot(path, sparse, linked)
            busy.append(Worktree(path, entry.branch_name, f"{POOL_DIR}/{path.name}", entry.head))
        return busy

    # -- recycling and creating ----------------------------------------------------------

    async def _recycled(
        self,
        branch: str,
        sha: str,
        keep_ignored: bool,
        keep: tuple[str, ...],
        sparse: tuple[str, ...] | None,
    ) -> _Slot | None:
        """An idle slot moved to `branch` at `sha` and verified, or None if none is idle."""
        while self._idle:
            slot = self._pick(sparse)
            try:
                await ops.renew(
                    self.git, slot.path, branch, sha, alias=self.manager.alias, sparse=sparse
                )
                slot.sparse = sparse
                await ops.clean(self.git, slot.path, keep_ignored=keep_ignored, keep=keep)
                problems = await ops.isolation_problems(
                    self.git,
                    slot.path,
                    branch,
                    sha,
                    keep_ignored=keep_ignored,
                    sparse=sparse is not None,
                    keep=keep,
                )
            except (GitError, OSError, own_files.ForeignRepository) as exc:
                problems = [str(exc)]
            except BaseException:
                await self._discard(slot, "acquire was interrupted")
                raise
            if not problems:
                return slot
            await self._discard(slot, "; ".join(problems))
        return None

    def _pick(self, sparse: tuple[str, ...] | None) -> _Slot:
        """The most recently released slot, preferring one already on the same patterns."""
        for index in range(len(self._idle) - 1, -1, -1):
            if self._idle[index].sparse == sparse:
                return self._idle.pop(index)
        return self._idle.pop()

    async def _created(self, branch: str, sha: str, sparse: tuple[str, ...] | None) -> _Slot:
        path = self._reserve(await self.directory())
        try:
            await isolated.create(
                self.git, path, branch, sha, alias=self.manager.alias, sparse=sparse
            )
        except BaseException:
            with contextlib.suppress(GitError, OSError):
                await self._remove(_Slot(path))
            raise
        finally:
            self._reserved.discard(path)
        return _Slot(path, sparse)

    def _reserve(self, directory: Path) -> Path:
        """The lowest free slot number, reserved without awaiting (so no two callers share it)."""
        taken = {s.path for s in self._idle} | set(self._leased) | self._reserved
        number = 1
        while (path := directory / str(number)) in taken or path.exists():
            number += 1
        self._reserved.add(path)
        return path

    async def _discard(self, slot: _Slot, reason: str) -> None:
        """A slot that failed recycling goes: its files are no task's work (a released slot
        holds only what was saved), and removing it runs no git in it."""
        self.discarded.append((slot.path, reason))
        with contextlib.suppress(GitError, OSError):
            await self._remove(slot)

    async def _remove(self, slot: _Slot) -> None:
        worktree = Worktree(slot.path, None, slot.path.name, "")
        if slot.linked:
            await self.manager.remove(worktree)  # `git worktree remove`: git knows of it
        else:
            await asyncio.to_thread(task_dirs.remove, slot.path)  # never git: plain files

    @staticmethod
    async def _sparse_of(path: Path) -> tuple[str, ...] | None:
        """The patterns the slot was checked out with (read from its files), None: full."""
        try:
            text = (path / ".git" / "info" / "sparse-checkout").read_text(encoding="utf-8")
        except OSError:
            return None
        return tuple(text.splitlines())
