"""Task and integration worktrees, kept outside the user's repository.

Layout: `<root>/<run_id>/<task_id>.<attempt>` for task worktrees and
`<root>/<run_id>/_integration` for the detached integration worktree. `root` is
`<base>/<repository key>`: `base` is plait's data directory
(`~/.local/share/plait/worktrees` on Linux) unless `--worktree-root` or the plan's
`worktree_root` names another, and the key (`<name>-<hash of the git common dir>`)
keeps the worktrees of different repositories apart. The root is never inside the
repository's working tree or its `.git`: Claude Code refuses to edit anything under
`.git/` (anthropics/claude-code#11059), and tools that walk the tree would see
nested checkouts. Runs made before this layout kept their worktrees in
`<git common dir>/plait-worktrees` (LEGACY_ROOT); they are recovered and cleaned there.

Ids are checked against ID_PATTERN before any path is built, so `_integration` can
never be a task's directory and no id can climb out of the root.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from plait.domain.ids import task_branch, validate_id
from plait.execution.git.cli import Git, GitError
from plait.execution.git.copy import CopyReport, checked_relative, copy_paths
from plait.execution.git.porcelain import WorktreeEntry, parse_worktree_list
from plait.execution.git.refs import validate_ref_name
from plait.execution.worktrees import isolated, saving, task_dirs
from plait.execution.worktrees.clean_tree import clean_argv, remove_caches
from plait.execution.worktrees.isolated import NestedRepository, Saved

__all__ = [
    "CopyReport",
    "NestedRepository",
    "Saved",
    "Worktree",
    "WorktreeEntry",
    "WorktreeError",
    "WorktreeManager",
    "default_worktree_base",
    "repository_key",
    "worktree_root_for",
]

INTEGRATION_DIR = "_integration"
POOL_DIR = "_pool"  # the pool's slots (pool.py), task repositories like the runs' ones
LEGACY_ROOT = "plait-worktrees"  # under the git common dir, before worktrees moved out
_KEY_UNSAFE = re.compile(r"[^a-z0-9_.-]+")


def default_worktree_base() -> Path:
    return Path(platformdirs.user_data_dir("plait", appauthor=False)) / "worktrees"


def repository_key(common_dir: Path) -> str:
    """`<name>-<12 hex>`: readable, and distinct for every repository on the machine."""
    name = common_dir.parent.name if common_dir.name == ".git" else common_dir.name
    readable = _KEY_UNSAFE.sub("-", name.lower()).strip("-.")[:40] or "repo"
    digest = hashlib.sha256(str(common_dir).encode()).hexdigest()[:12]
    return f"{readable}-{digest}"


async def worktree_root_for(git: Git, base: Path | None = None) -> Path:
    """Where this repository's worktrees go under `base` (default: plait's data directory).
    WorktreeError if that would be inside the repository or its git directory."""
    common = await git.common_dir()
    chosen = (base.expanduser() if base is not None else default_worktree_base()).resolve()
    root = chosen / repository_key(common)
    try:
        toplevel: Path | None = await git.toplevel()
    except GitError:  # a bare repository has no working tree
        toplevel = None
    for inside, what in ((common, "git directory"), (toplevel, "working tree")):
        if inside is not None and root.is_relative_to(inside):
            raise WorktreeError(
                f"the worktree root {chosen} is inside the repository's {what} ({inside}):"
                " choose a directory outside the repository (--worktree-root DIR)"
            )
    return root


class WorktreeError(Exception):
    """A worktree operation refused for a reason git itself would not have reported clearly."""


@dataclass(frozen=True)
class Worktree:
    path: Path
    branch: str | None  # short branch name (plait/<run>/<task>), None when detached
    worktree_id: str
    base_commit: str


class WorktreeManager:
    """Creates, lists, commits in and removes worktrees of one repository."""

    def __init__(self, git: Git, root: Path | None = None, *, alias: str | None = None) -> None:
        """`root`: this repository's worktree root exactly (a run's recorded one);
        None: the default for the repository (see `worktree_root_for`). `alias`: the run's
        base branch, also a branch of each task's own repository (at the task's base)."""
        self.git = git
        self._root = root
        self.alias = alias
        self._excludes: dict[tuple[Path, tuple[str, ...]], str] = {}  # -> the text written
        self._changes: dict[tuple[str, str], list[str]] = {}  # (base, head) -> paths

    async def root(self) -> Path:
        if self._root is None:
            self._root = await worktree_root_for(self.git)
        return self._root.resolve()

    @staticmethod
    def task_branch(run_id: str, task_id: str) -> str:
        return task_branch(run_id, task_id)

    async def task_path(self, run_id: str, task_id: str, attempt: int) -> Path:
        if attempt < 1:
            raise ValueError(f"attempt must be >= 1, got {attempt}")
        name = f"{validate_id('task id', task_id)}.{attempt}"
        return await self._inside_root(validate_id("run id", run_id), name)

    async def integration_path(self, run_id: str) -> Path:
        return await self._inside_root(validate_id("run id", run_id), INTEGRATION_DIR)

    async def _inside_root(self, *parts: str) -> Path:
        root = await self.root()
        path = root.joinpath(*parts).resolve()
        if not path.is_relative_to(root) or path == root:
            raise WorktreeError(f"{path} is not inside the worktree root {root}")
        return path

    async def create(
        self,
        run_id: str,
        task_id: str,
        attempt: int,
        base_commit: str,
        branch: str | None = None,
    ) -> Worktree:
        """A fresh task directory with a repository of its own (see isolated.py) on a new
        branch at `base_commit`, and the same branch in the user's repository, which only
        plait moves (to the task's result, by compare-and-swap).

        Attempt 1 refuses an existing branch (it may hold someone's work);
        a later attempt resets the task branch to `base_commit`.
        """
        branch = branch or self.task_branch(run_id, task_id)
        if validate_ref_name(branch).startswith("refs/"):
            raise WorktreeError(f"branch {branch!r}: give a short branch name, not a full ref")
        path = await self.task_path(run_id, task_id, attempt)
        sha = await self.git.rev_parse(base_commit)
        if path.exists() and any(path.iterdir()):
            raise WorktreeError(f"{path} exists already; refusing to overwrite it")
        ref = await self.claim_branch(branch, sha, attempt)
        try:
            await isolated.create(self.git, path, branch, sha, alias=self.alias)
            saving.BRANCH_TIPS[(path, ref)] = sha
        except BaseException:
            await self.unclaim_branch(ref, sha, attempt)
            task_dirs.remove_quietly(path)
            raise
        return Worktree(path, branch, f"{run_id}/{path.name}", sha)

    async def claim_branch(self, branch: str, sha: str, attempt: int) -> str:
        """The task branch (its full ref) at `sha` in the user's repository, for a fresh or
        pooled task repository: attempt 1 creates it (the all-zero old value refuses an
        existing one, maybe someone's work), a later one moves it to its new base."""
        ref = f"refs/heads/{branch}"
        old = ("0" * 40,) if attempt == 1 else ()
        made = await self.git.run("update-ref", ref, sha, *old, check=False)
        if made.returncode != 0 and await self.git.ref_target(ref) != sha:
            raise WorktreeError(f"branch {branch!r} already exists; refusing to reset it")
        return ref

    async def unclaim_branch(self, ref: str, sha: str, attempt: int) -> None:
        if attempt == 1:  # the task's repository could not be made: the branch goes too
            await self.git.run("update-ref", "-d", ref, sha, check=False)

    async def create_detached(self, path: Path, commit: str) -> Worktree:
        """A worktree with a detached HEAD at `commit` (the integration worktree)."""
        sha = await self.git.rev_parse(commit)
        path = Path(path).resolve()
        path.parent.mkdir(parents=True, exist_ok=True)
        await self.git.run_admin("worktree", "add", "--detach", "--", str(path), sha)
        return Worktree(path, None, path.name, sha)

    async def checkout_detached(
        self, worktree: Worktree, commit: str, keep: Sequence[str] = ()
    ) -> Worktree:
        """Move a detached worktree to `commit` and make it hold exactly that commit's tree:
        tracked changes, untracked and ignored files all go, but for the `keep` paths, which
        lose their caches (see clean_tree). Copied files (.env) must be copied again.
        """
        if worktree.branch is not None:
            raise WorktreeError(f"{worktree.path} has branch {worktree.branch}; refusing to reset")
        sha = await self.git.rev_parse(commit)
        await self.git.run("checkout", "--quiet", "--force", "--detach", sha, cwd=worktree.path)
        await self.git.run(*clean_argv(keep), cwd=worktree.path)
        if keep:
            await asyncio.to_thread(remove_caches, worktree.path, keep)
        return Worktree(worktree.path, None, worktree.worktree_id, sha)

    async def copy_ignored(
        self, worktree: Worktree, repo_root: Path, paths: Sequence[str]
    ) -> CopyReport:
        """Copy git-ignored files (e.g. `.env`) from the user's checkout into `worktree`.

        Paths are relative to `repo_root`; one that escapes it raises ValueError.
        Missing and not-ignored (tracked or plain untracked) paths are skipped and reported.
        """
        for path in paths:
            checked_relative(path)  # before git sees it: check-ignore would fail less clearly
        ignored = await self._ignored(repo_root, paths)
        return await asyncio.to_thread(copy_paths, repo_root, worktree.path, paths, ignored)

    async def _ignored(self, repo_root: Path, paths: Sequence[str]) -> set[str]:
        if not paths:
            return set()
        result = await self.git.run(
            "check-ignore", "-z", "--stdin", cwd=repo_root, check=False, input="\0".join(paths)
        )
        if result.returncode not in (0, 1):
            raise GitError(["git", "check-ignore"], result.returncode, result.stderr)
        return set(filter(None, result.stdout.split("\0")))

    async def remove(self, worktree: Worktree, delete_branch: bool = False) -> None:
        """Remove the worktree (even dirty or locked, e.g. by an interrupted add)."""
        if isolated.is_isolated(worktree.path):
            saving.BRANCH_TIPS.pop((worktree.path, f"refs/heads/{worktree.branch}"), None)
            await asyncio.to_thread(task_dirs.remove, worktree.path)
        else:
            await self._remove_linked(worktree)
        if delete_branch and worktree.branch:
            ref = f"refs/heads/{validate_ref_name(worktree.branch)}"
            # Deleting a ref that is already gone fails harmlessly; no existence check needed.
            await self.git.run("update-ref", "-d", ref, check=False)

    async def _remove_linked(self, worktree: Worktree) -> None:
        result = await self.git.run_admin(
            "worktree", "remove", "--force", "--force", "--", str(worktree.path), check=False
        )
        if result.returncode != 0:
            if worktree.path.exists():
                raise GitError(["git", "worktree", "remove"], result.returncode, result.stderr)
            # The directory was already gone: drop git's stale record of it.
            await self.git.run_admin("worktree", "prune")

    async def list_porcelain(self) -> list[WorktreeEntry]:
        """Every worktree git knows of, main one first, then the task repositories under
        the root (see isolated.py), for crash recovery and `plait clean`."""
        result = await self.git.run("worktree", "list", "--porcelain", "-z")
        return parse_worktree_list(result.stdout) + await asyncio.to_thread(
            self._task_repositories, await self.root()
        )

    @staticmethod
    def _task_repositories(root: Path) -> list[WorktreeEntry]:
        found: list[WorktreeEntry] = []
        for run_dir in sorted(root.iterdir()) if root.is_dir() else ():
            if not run_dir.is_dir() or (run_dir.name.startswith("_") and run_dir.name != POOL_DIR):
                continue
            for path in sorted(run_dir.iterdir()):
                if isolated.is_isolated(path):
                    branch, head = task_dirs.head_of(path)
                    detached = branch is None
                    entry = WorktreeEntry(path, head, branch, detached, own_repository=True)
                    found.append(entry)
        return found

    async def write_excludes(self, path: Path, patterns: Sequence[str]) -> Path:
        """An ignore file for `commit_all`: the user's own global excludes (which
        `core.excludesFile` would otherwise replace) plus `patterns`. Written once per
        manager (a run's tasks share it) unless the file changed since."""
        key = (path, tuple(patterns))
        written = self._excludes.get(key)
        if written is not None and _read(path) == written:
            return path
        configured = await self.git.run(
            "config", "--path", "--get", "core.excludesFile", check=False
        )
        own = Path(configured.stdout.strip()) if configured.returncode == 0 else None
        if own is None:
            config_home = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
            own = Path(config_home) / "git" / "ignore"
        try:
            user = own.read_text(encoding="utf-8", errors="replace")
        except OSError:
            user = ""
        path.parent.mkdir(parents=True, exist_ok=True)
        text = f"{user.rstrip()}\n# plait: tool files and byproducts\n" + "\n".join(patterns)
        path.write_text(text.lstrip() + "\n", encoding="utf-8")
        self._excludes[key] = text.lstrip() + "\n"
        return path

    async def commit_all(
        self,
        worktree: Worktree,
        message: str,
        *,
        excludes: Path | None = None,
        drop: Sequence[str] = (),
    ) -> str | None:
        """Commit everything the task changed; return the commit, or None if nothing changed.
        (`save`, for the commits it kept too.)"""
        return (await self.save(worktree, message, excludes=excludes, drop=drop)).commit

    async def save(
        self,
        worktree: Worktree,
        message: str,
        *,
        excludes: Path | None = None,
        drop: Sequence[str] = (),
        kept_ref: str | None = None,
    ) -> Saved:
        """The task's work committed on its branch, explicitly (see saving.save)."""
        saved = await saving.save(
            self.git, worktree, message, excludes=excludes, drop=drop, kept_ref=kept_ref
        )
        if saved.commit is not None and saved.changed is not None:
            self._changes[(worktree.base_commit, saved.commit)] = saved.changed
        return saved

    async def keep(
        self,
        worktree: Worktree,
        kept_ref: str,
        message: str,
        *,
        excludes: Path | None = None,
        drop: Sequence[str] = (),
    ) -> str | None:
        """A failed or interrupted attempt's work at `kept_ref` (see saving.keep)."""
        return await saving.keep(
            self.git, worktree, kept_ref, message, excludes=excludes, drop=drop
        )

    async def changed_files(self, base: str, head: str) -> list[str]:
        """Paths that differ between two commits (renames as delete + add)."""
        a, b = await self.git.rev_parse(base), await self.git.rev_parse(head)
        known = self._changes.pop((a, b), None)
        if known is not None:
            return known  # commit_all saw them
        out = await self.git.run("diff", "--name-only", "--no-renames", "-z", a, b, "--")
        return [name for name in out.stdout.split("\0") if name]


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        return None
