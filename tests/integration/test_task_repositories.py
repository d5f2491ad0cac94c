"""A task's own repository with fewer git processes (worktrees/isolated.py): the second
repository of a directory is written as `git init` wrote the first, plait's commits go
straight into the user's object store, and the fetch is skipped only when the task made
no object of its own: its work lands either way, and nothing is lost with its directory."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from plait.execution.git.cli import Git
from plait.execution.worktrees import repo_files
from plait.execution.worktrees.manager import Worktree, WorktreeManager
from plait.execution.worktrees.pool import Released, WorktreePool
from tests.gitrepo import ENV, commit_file, git, make_repo


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "repo")


@pytest.fixture
def manager(repo: Path, tmp_path: Path) -> WorktreeManager:
    return WorktreeManager(Git(repo), tmp_path / "trees")


@pytest.fixture
def head(repo: Path) -> str:
    return git(repo, "rev-parse", "HEAD")


def git_dir_files(path: Path, branch: str) -> dict[str, tuple[int, bytes | None]]:
    """Every entry of a task repository's git dir that `git init` made or that plait wrote
    (not the index and reflogs, which carry times): path with the branch named BRANCH ->
    (mode, bytes or None for a directory)."""
    own = path / ".git"
    found: dict[str, tuple[int, bytes | None]] = {}
    for directory, _, names in os.walk(own):
        entries = [Path(directory)] + [Path(directory, name) for name in names]
        for entry in entries:
            relative = str(entry.relative_to(own)).replace(branch, "BRANCH")
            if relative in ("index", "ORIG_HEAD") or relative.startswith("logs"):
                continue
            data = None if entry.is_dir() else entry.read_bytes().replace(branch.encode(), b"B")
            found[relative] = (entry.stat().st_mode, data)
    return found


async def test_the_second_task_repository_of_a_run_is_made_as_git_init_made_the_first(
    manager: WorktreeManager, head: str
) -> None:
    first = await manager.create("run1", "task-a", 1, head)
    second = await manager.create("run1", "task-b", 1, head)
    assert first.branch is not None
    assert second.branch is not None
    assert git_dir_files(second.path, second.branch) == git_dir_files(first.path, first.branch)
    assert git(second.path, "symbolic-ref", "HEAD") == f"refs/heads/{second.branch}"
    assert git(second.path, "status", "--porcelain") == ""
    git(second.path, "fsck", "--no-dangling")


async def test_a_renewed_pool_slot_is_made_as_git_init_made_its_repository_first(
    manager: WorktreeManager, head: str
) -> None:
    pool = WorktreePool(manager)
    first = await pool.acquire("run1", "a", 1, head)
    assert first.branch is not None
    made_by_init = git_dir_files(first.path, first.branch)
    git(first.path, "config", "alias.st", "status")
    git(first.path, "tag", "mine")
    git(first.path, "checkout", "--quiet", "-b", "elsewhere")
    (first.path / ".git" / "description").write_text("the task's\n")
    assert await pool.release(first) is Released.POOLED

    renewed = await pool.acquire("run1", "b", 1, head)

    assert renewed.path == first.path
    assert renewed.branch is not None
    assert git_dir_files(renewed.path, renewed.branch) == made_by_init
    assert git(renewed.path, "symbolic-ref", "HEAD") == f"refs/heads/{renewed.branch}"
    assert git(renewed.path, "status", "--porcelain") == ""
    git(renewed.path, "fsck", "--no-dangling")


def own_object_count(path: Path) -> int:
    out = git(path, "count-objects", "-v")
    counts = dict(line.split(": ") for line in out.splitlines())
    return int(counts["count"]) + int(counts["in-pack"])


def lands_whole(repo: Path, commit: str, *files: str) -> None:
    """Every object `commit` reaches is in the user's repository, its files readable."""
    git(repo, "rev-list", "--objects", "--missing=error", commit)
    for name in files:
        git(repo, "cat-file", "-e", f"{commit}:{name}")


def removed(worktree: Worktree) -> None:
    """The task's directory gone, as after its batch: only the user's repository is left."""
    shutil.rmtree(worktree.path)


async def test_plaits_commit_of_a_task_that_made_no_objects_is_in_the_users_repository(
    repo: Path, manager: WorktreeManager, head: str
) -> None:
    worktree = await manager.create("r", "t", 1, head)
    (worktree.path / "new.txt").write_text("the task's work\n")
    commit = await manager.commit_all(worktree, "task t")
    assert commit is not None
    assert not repo_files.has_own_objects(worktree.path)
    assert own_object_count(worktree.path) == 0
    assert git(worktree.path, "rev-parse", "HEAD") == commit
    removed(worktree)
    lands_whole(repo, commit, "new.txt")
    assert git(repo, "show", f"{commit}:new.txt") == "the task's work"
    assert git(repo, "rev-parse", f"refs/heads/{worktree.branch}") == commit


async def test_a_task_that_committed_itself_still_lands_every_object_it_made(
    repo: Path, manager: WorktreeManager, head: str
) -> None:
    worktree = await manager.create("r", "t", 1, head)
    own = commit_file(worktree.path, "agent.txt", "committed by the agent\n")
    (worktree.path / "after.txt").write_text("left uncommitted\n")
    assert repo_files.has_own_objects(worktree.path)
    commit = await manager.commit_all(worktree, "task t")
    assert commit is not None
    removed(worktree)
    lands_whole(repo, commit, "agent.txt", "after.txt")
    assert git(repo, "rev-parse", f"{commit}^") == own


async def test_a_task_that_only_staged_its_files_still_lands_them(
    repo: Path, manager: WorktreeManager, head: str
) -> None:
    worktree = await manager.create("r", "t", 1, head)
    (worktree.path / "staged.txt").write_text("staged by the agent\n")
    git(worktree.path, "add", "staged.txt")  # a blob in the task's own store
    commit = await manager.commit_all(worktree, "task t")
    assert commit is not None
    removed(worktree)
    lands_whole(repo, commit, "staged.txt")


async def test_a_task_that_packed_its_objects_still_lands_them(
    repo: Path, manager: WorktreeManager, head: str
) -> None:
    worktree = await manager.create("r", "t", 1, head)
    commit_file(worktree.path, "agent.txt", "committed, then packed\n")
    subprocess.run(
        ["git", "repack", "-a", "-d", "-q", "-l"], cwd=worktree.path, env=ENV, check=True
    )
    commit = await manager.commit_all(worktree, "task t")
    assert commit is not None
    removed(worktree)
    lands_whole(repo, commit, "agent.txt")


async def test_a_failed_attempts_kept_work_is_in_the_users_repository(
    repo: Path, manager: WorktreeManager, head: str
) -> None:
    worktree = await manager.create("r", "t", 1, head)
    (worktree.path / "half.txt").write_text("half done\n")
    kept = await manager.keep(worktree, "refs/plait/kept/r/t/1", "kept")
    assert kept is not None
    removed(worktree)
    lands_whole(repo, kept, "half.txt")
    assert git(repo, "rev-parse", "refs/plait/kept/r/t/1") == kept


async def test_a_commit_plait_made_on_its_base_descends_from_it(
    repo: Path, manager: WorktreeManager, head: str
) -> None:
    worktree = await manager.create("r", "t", 1, head)
    (worktree.path / "new.txt").write_text("work\n")
    commit = await manager.commit_all(worktree, "task t")
    assert commit is not None
    assert await manager.git.is_ancestor(head, commit)
    assert not await manager.git.is_ancestor(commit, head)
    assert await Git(repo).is_ancestor(head, commit)  # as git itself says


async def test_a_task_that_committed_itself_lands_from_a_root_whose_path_has_a_colon(
    repo: Path, tmp_path: Path, head: str
) -> None:
    manager = WorktreeManager(Git(repo), tmp_path / 'odd:"root')
    worktree = await manager.create("r", "t", 1, head)
    commit_file(worktree.path, "agent.txt", "committed by the agent\n")
    (worktree.path / "after.txt").write_text("left uncommitted\n")
    commit = await manager.commit_all(worktree, "task t")
    assert commit is not None
    removed(worktree)
    lands_whole(repo, commit, "agent.txt", "after.txt")


async def test_in_a_repository_shared_by_a_group_the_objects_come_through_the_fetch(
    tmp_path: Path,
) -> None:
    repo = make_repo(tmp_path / "shared")
    git(repo, "config", "core.sharedRepository", "group")
    manager = WorktreeManager(Git(repo), tmp_path / "trees")
    worktree = await manager.create("r", "t", 1, git(repo, "rev-parse", "HEAD"))
    (worktree.path / "new.txt").write_text("the task's work\n")
    commit = await manager.commit_all(worktree, "task t")
    assert commit is not None
    assert repo_files.has_own_objects(worktree.path)  # plait's objects, fetched from there
    removed(worktree)
    lands_whole(repo, commit, "new.txt")  # written by git in the shared repository itself
