"""WorktreeManager against real git: layout, ids, concurrency, commits, copies, recovery."""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from plait.domain.ids import InvalidIdError
from plait.execution.git.cli import Git, GitResult, UnknownRevisionError
from plait.execution.worktrees.manager import (
    Worktree,
    WorktreeError,
    WorktreeManager,
    worktree_root_for,
)
from tests.gitrepo import ENV, commit_file, git, make_repo


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "repo")


@pytest.fixture
def manager(repo: Path) -> WorktreeManager:
    return WorktreeManager(Git(repo))


@pytest.fixture
def head(repo: Path) -> str:
    return git(repo, "rev-parse", "HEAD")


async def test_a_task_worktree_gets_its_own_branch_outside_the_users_repository(
    repo: Path, manager: WorktreeManager, head: str
) -> None:
    wt = await manager.create("run1", "task-a", 1, head)
    assert wt.branch == "plait/run1/task-a"
    assert wt.base_commit == head
    data_home = Path(os.environ["XDG_DATA_HOME"]).resolve()
    assert wt.path.is_relative_to(data_home / "plait" / "worktrees")
    assert wt.path.parent.parent.name.startswith("repo-")
    assert wt.path.parts[-2:] == ("run1", "task-a.1")
    assert not wt.path.is_relative_to(repo.resolve())
    assert git(wt.path, "rev-parse", "HEAD") == head
    assert git(wt.path, "symbolic-ref", "--short", "HEAD") == "plait/run1/task-a"
    assert git(repo, "status", "--porcelain") == ""


async def test_an_explicit_root_is_used_as_it_is(repo: Path, tmp_path: Path, head: str) -> None:
    manager = WorktreeManager(Git(repo), tmp_path / "trees")
    wt = await manager.create("r", "t", 1, head)
    assert wt.path == (tmp_path / "trees" / "r" / "t.1").resolve()


async def test_a_worktree_base_keys_each_repository_apart(tmp_path: Path) -> None:
    first, second = make_repo(tmp_path / "one" / "app"), make_repo(tmp_path / "two" / "app")
    roots = {await worktree_root_for(Git(r), tmp_path / "trees") for r in (first, second)}
    assert len(roots) == 2
    assert all(root.parent == (tmp_path / "trees").resolve() for root in roots)


@pytest.mark.parametrize("inside", [".git/trees", "sub/trees", "."])
async def test_a_worktree_root_inside_the_repository_is_refused(repo: Path, inside: str) -> None:
    with pytest.raises(WorktreeError, match="inside the repository"):
        await worktree_root_for(Git(repo), repo / inside)


UNSAFE_IDS = [
    "../x",
    "--upload-pack=x",
    "a..b",
    "x.lock",
    "refs/heads/main",
    "a\0b",
    "x" * 64,
    "",
    "Upper",
    "_integration",
    "-x",
]


@pytest.mark.parametrize("task_id", UNSAFE_IDS)
async def test_an_unsafe_task_id_is_refused_before_anything_is_created(
    repo: Path, manager: WorktreeManager, head: str, task_id: str
) -> None:
    before = git(repo, "for-each-ref")
    with pytest.raises(InvalidIdError):
        await manager.create("run1", task_id, 1, head)
    assert git(repo, "for-each-ref") == before
    assert not (await manager.root()).exists()


@pytest.mark.parametrize("run_id", ["../run", "--x", "a/b", "r\n"])
async def test_an_unsafe_run_id_is_refused(
    manager: WorktreeManager, head: str, run_id: str
) -> None:
    with pytest.raises(InvalidIdError):
        await manager.create(run_id, "t", 1, head)


async def test_a_branch_that_could_be_read_as_an_option_is_refused(
    manager: WorktreeManager, head: str
) -> None:
    with pytest.raises(ValueError, match="option"):
        await manager.create("r", "t", 1, head, branch="--upload-pack=x")


async def test_first_attempt_refuses_to_reset_an_existing_branch(
    repo: Path, manager: WorktreeManager, head: str
) -> None:
    git(repo, "branch", "plait/r/t", "HEAD~1")
    with pytest.raises(WorktreeError, match="already exists"):
        await manager.create("r", "t", 1, head)
    assert git(repo, "rev-parse", "plait/r/t") == git(repo, "rev-parse", "HEAD~1")


async def test_first_attempt_takes_over_a_branch_left_untouched_at_its_base(
    repo: Path, manager: WorktreeManager, head: str
) -> None:
    # What an add that lost git's commondir race and was retried leaves behind: no work on it.
    git(repo, "branch", "plait/r/t", head)
    worktree = await manager.create("r", "t", 1, head)
    assert git(worktree.path, "symbolic-ref", "--short", "HEAD") == "plait/r/t"


async def test_a_first_attempt_that_fails_leaves_no_branch_behind(
    repo: Path, manager: WorktreeManager, head: str
) -> None:
    path = await manager.task_path("r", "t", 1)
    path.mkdir(parents=True)
    (path / "in-the-way.txt").write_text("not git's\n")
    with pytest.raises(WorktreeError, match="exists already"):
        await manager.create("r", "t", 1, head)
    assert git(repo, "branch", "--list", "plait/r/t") == ""
    assert (path / "in-the-way.txt").read_text() == "not git's\n"


async def test_a_retry_resets_the_task_branch_to_the_new_base(
    repo: Path, manager: WorktreeManager, head: str
) -> None:
    first = await manager.create("r", "t", 1, head)
    commit_file(first.path, "work.txt", "failed attempt\n")
    await manager.remove(first)
    new_base = commit_file(repo, "base.txt", "moved on\n")
    second = await manager.create("r", "t", 2, new_base)
    assert second.path.name == "t.2"
    assert git(repo, "rev-parse", "plait/r/t") == new_base
    assert not (second.path / "work.txt").exists()


async def test_an_unknown_base_commit_is_refused(manager: WorktreeManager) -> None:
    with pytest.raises(UnknownRevisionError, match="unknown revision"):
        await manager.create("r", "t", 1, "no-such-ref")


async def test_remove_deletes_directory_registration_and_optionally_the_branch(
    repo: Path, manager: WorktreeManager, head: str
) -> None:
    kept = await manager.create("r", "kept", 1, head)
    dropped = await manager.create("r", "dropped", 1, head)
    (kept.path / "dirty.txt").write_text("uncommitted\n")
    await manager.remove(kept)
    await manager.remove(dropped, delete_branch=True)
    assert not kept.path.exists()
    assert not dropped.path.exists()
    listed = {e.path for e in await manager.list_porcelain()}
    assert kept.path not in listed
    assert dropped.path not in listed
    assert git(repo, "branch", "--list", "plait/r/*") == "plait/r/kept"


async def test_remove_tolerates_a_directory_someone_already_deleted(
    manager: WorktreeManager, head: str
) -> None:
    wt = await manager.create("r", "t", 1, head)
    shutil.rmtree(wt.path)
    await manager.remove(wt, delete_branch=True)
    assert all(e.path != wt.path for e in await manager.list_porcelain())


async def test_remove_clears_a_locked_entry_left_by_an_interrupted_add(
    repo: Path, manager: WorktreeManager, head: str
) -> None:
    wt = await manager.create_detached(await manager.integration_path("r"), head)
    git(repo, "worktree", "lock", "--reason", "initializing", str(wt.path))
    (entry,) = [e for e in await manager.list_porcelain() if e.path == wt.path]
    assert entry.locked == "initializing"
    await manager.remove(wt)
    assert not wt.path.exists()


async def test_list_porcelain_reports_branch_detached_locked_and_prunable(
    repo: Path, manager: WorktreeManager, head: str, tmp_path: Path
) -> None:
    task = await manager.create("r", "t", 1, head)  # a repository of its own
    detached = await manager.create_detached(tmp_path / "integration", head)
    gone = await manager.create_detached(tmp_path / "gone", head)
    shutil.rmtree(gone.path)
    git(repo, "worktree", "lock", str(detached.path))
    entries = {e.path: e for e in await manager.list_porcelain()}
    main = entries[repo.resolve()]
    assert (main.branch, main.branch_name, main.head) == ("refs/heads/main", "main", head)
    assert (entries[task.path].branch, entries[task.path].head) == ("refs/heads/plait/r/t", head)
    assert entries[task.path].locked is None
    assert entries[detached.path].detached
    assert entries[detached.path].branch is None
    assert entries[detached.path].locked == ""
    assert entries[gone.path].prunable is not None
    assert entries[task.path].prunable is None


async def test_ten_concurrent_creations_all_succeed_while_other_worktrees_commit(
    repo: Path, manager: WorktreeManager, head: str, tmp_path: Path
) -> None:
    busy = [await manager.create("busy", f"b{i}", 1, head) for i in range(3)]

    async def keep_committing(wt: Worktree) -> None:
        for n in range(15):
            (wt.path / "log.txt").write_text(f"{n}\n")
            await manager.commit_all(wt, f"commit {n}")

    async def foreign_worktree_adds(stream: int) -> None:
        # Another process's adds do not take our lock: they race with ours.
        for n in range(10):
            path = tmp_path / f"foreign-{stream}-{n}"
            proc = await asyncio.create_subprocess_exec(
                "git", "worktree", "add", "--quiet", "--detach", str(path), head,
                cwd=repo, env=ENV,
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
            )  # fmt: skip
            await proc.wait()

    creations = [manager.create("race", f"t{i}", 1, head) for i in range(10)]
    results = await asyncio.gather(
        *creations,
        *(keep_committing(wt) for wt in busy),
        *(foreign_worktree_adds(stream) for stream in range(3)),
    )
    created = [r for r in results if isinstance(r, Worktree)]
    assert len(created) == 10
    listed = {e.path: e for e in await manager.list_porcelain()}
    for wt in created:
        assert listed[wt.path].branch == f"refs/heads/{wt.branch}"
        assert git(wt.path, "rev-parse", "HEAD") == head


class RepairingGit(Git):
    """Finishes the half-initialised worktree `ghost` once git has tripped over it."""

    def __init__(self, repo: Path) -> None:
        super().__init__(repo)
        self.tripped = 0

    async def _run_once(self, *args: Any) -> GitResult:
        result = await super()._run_once(*args)
        if "worktrees/ghost/commondir" in result.stderr:
            self.tripped += 1
            (self.repo / ".git" / "worktrees" / "ghost" / "commondir").write_text("../..\n")
        return result


async def test_a_worktree_add_that_meets_a_half_initialised_worktree_is_retried(
    repo: Path, head: str
) -> None:
    # What a concurrent `git worktree add` looks like mid-way: commondir exists but is empty.
    ghost = repo / ".git" / "worktrees" / "ghost"
    ghost.mkdir(parents=True)
    (ghost / "gitdir").write_text(f"{repo.parent / 'ghost' / '.git'}\n")
    (ghost / "commondir").write_text("")
    git_ = RepairingGit(repo)
    manager = WorktreeManager(git_)
    wt = await manager.create_detached(await manager.integration_path("r"), head)
    assert git_.tripped == 1
    assert git(wt.path, "rev-parse", "HEAD") == head


async def test_commit_all_commits_every_change_including_new_and_deleted_files(
    manager: WorktreeManager, head: str
) -> None:
    wt = await manager.create("r", "t", 1, head)
    (wt.path / "new.txt").write_text("new\n")
    (wt.path / "README.md").unlink()
    (wt.path / ".env").write_text("SECRET=1\n")
    commit = await manager.commit_all(wt, "task t: done")
    assert commit == git(wt.path, "rev-parse", "HEAD")
    assert git(wt.path, "log", "-1", "--format=%s%n%P") == f"task t: done\n{head}"
    assert git(wt.path, "status", "--porcelain") == ""
    assert await manager.changed_files(head, commit) == ["README.md", "new.txt"]


async def test_commit_all_returns_none_when_the_task_changed_nothing(
    manager: WorktreeManager, head: str
) -> None:
    wt = await manager.create("r", "t", 1, head)
    assert await manager.commit_all(wt, "nothing") is None


async def test_commit_all_returns_the_tasks_own_commit_when_it_committed_itself(
    manager: WorktreeManager, head: str
) -> None:
    wt = await manager.create("r", "t", 1, head)
    own = commit_file(wt.path, "agent.txt", "committed by the agent\n")
    assert await manager.commit_all(wt, "plait") == own


async def test_commit_all_works_without_any_configured_identity(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for name in (
        "GIT_AUTHOR_NAME",
        "GIT_AUTHOR_EMAIL",
        "GIT_COMMITTER_NAME",
        "GIT_COMMITTER_EMAIL",
    ):
        monkeypatch.delenv(name, raising=False)
    repo = make_repo(tmp_path / "anon", identity=False)
    manager = WorktreeManager(Git(repo))
    wt = await manager.create("r", "t", 1, git(repo, "rev-parse", "HEAD"))
    (wt.path / "x.txt").write_text("x\n")
    commit = await manager.commit_all(wt, "anonymous")
    assert commit is not None
    assert git(repo, "log", "-1", "--format=%an <%ae>", commit) == "plait <plait@localhost>"


async def test_commit_all_skips_the_users_commit_hooks(
    repo: Path, manager: WorktreeManager, head: str
) -> None:
    hook = repo / ".git" / "hooks" / "pre-commit"
    hook.write_text("#!/bin/sh\nexit 1\n")
    hook.chmod(0o755)
    wt = await manager.create("r", "t", 1, head)
    (wt.path / "x.txt").write_text("x\n")
    assert await manager.commit_all(wt, "despite the hook") is not None


async def test_copy_ignored_copies_ignored_files_and_reports_the_rest(
    repo: Path, manager: WorktreeManager, head: str
) -> None:
    (repo / ".env").write_text("TOKEN=abc\n")
    (repo / "build").mkdir()
    (repo / "build" / "cache.bin").write_bytes(b"\x00\x01")
    (repo / "untracked.txt").write_text("not ignored\n")
    wt = await manager.create("r", "t", 1, head)
    report = await manager.copy_ignored(
        wt, repo, [".env", "build", "missing.env", "README.md", "untracked.txt"]
    )
    assert report.copied == (".env", "build")
    assert report.missing == ("missing.env",)
    assert report.not_ignored == ("README.md", "untracked.txt")
    assert (wt.path / ".env").read_text() == "TOKEN=abc\n"
    assert (wt.path / "build" / "cache.bin").read_bytes() == b"\x00\x01"
    assert not (wt.path / "untracked.txt").exists()
    assert await manager.commit_all(wt, "copies stay out of commits") is None


@pytest.mark.parametrize("path", ["../outside", "/etc/passwd", "a/../../x", ".git/config"])
async def test_copy_ignored_refuses_paths_that_escape_the_repository(
    repo: Path, manager: WorktreeManager, head: str, path: str
) -> None:
    wt = await manager.create("r", "t", 1, head)
    with pytest.raises(ValueError, match=r"relative|\.\."):
        await manager.copy_ignored(wt, repo, [path])


async def test_copy_ignored_never_writes_through_a_committed_symlink(
    repo: Path, manager: WorktreeManager, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (repo / "build").symlink_to(outside)
    git(repo, "add", "--force", "build")
    git(repo, "commit", "--quiet", "-m", "build is a symlink")
    linked = git(repo, "rev-parse", "HEAD")
    git(repo, "rm", "--cached", "--quiet", "build")
    git(repo, "commit", "--quiet", "-m", "build is a directory again")
    (repo / "build").unlink()
    (repo / "build").mkdir()
    (repo / "build" / "x").write_text("x\n")
    wt = await manager.create("r", "t", 1, linked)
    with pytest.raises(ValueError, match="symlink"):
        await manager.copy_ignored(wt, repo, ["build/x"])
    assert list(outside.iterdir()) == []


async def test_the_integration_worktree_is_detached_and_can_move_to_any_commit(
    repo: Path, manager: WorktreeManager, head: str
) -> None:
    path = await manager.integration_path("r")
    integration = await manager.create_detached(path, "HEAD~1")
    assert integration.branch is None
    assert git(path, "rev-parse", "HEAD") == git(repo, "rev-parse", "HEAD~1")
    (path / "leftover.txt").write_text("from the last test run\n")
    (path / "build").mkdir()
    (path / "build" / "out.o").write_text("ignored, built by the last run\n")
    moved = await manager.checkout_detached(integration, head)
    assert (moved.base_commit, git(path, "rev-parse", "HEAD")) == (head, head)
    assert not (path / "leftover.txt").exists()
    assert not (path / "build").exists()
    assert git(path, "status", "--porcelain", "--ignored") == ""


async def test_moving_the_integration_worktree_keeps_the_kept_outputs_without_their_caches(
    repo: Path, manager: WorktreeManager, head: str
) -> None:
    path = await manager.integration_path("r")
    integration = await manager.create_detached(path, "HEAD~1")
    venv = path / "build" / "venv"
    (venv / "lib" / "__pycache__").mkdir(parents=True)
    (venv / "lib" / "mod.py").write_text("x = 1\n")
    (venv / "lib" / "__pycache__" / "mod.cpython-311.pyc").write_bytes(b"stale")
    (venv / "lib" / "sourceless.pyc").write_bytes(b"stale")
    (venv / ".pytest_cache").mkdir()
    (path / "__pycache__").mkdir()
    (path / "__pycache__" / "conftest.cpython-311.pyc").write_bytes(b"stale")
    await manager.checkout_detached(integration, head, keep=["build/venv"])
    left = sorted(str(p.relative_to(path)) for p in path.rglob("*") if p.name != ".git")
    assert "build/venv/lib/mod.py" in left
    assert [name for name in left if "cache" in name or name.endswith(".pyc")] == []


async def test_changed_files_lists_paths_between_two_commits(
    repo: Path, manager: WorktreeManager, head: str
) -> None:
    later = commit_file(repo, "dir/with space.txt", "x\n")
    assert await manager.changed_files(head, later) == ["dir/with space.txt"]


async def test_changed_files_after_a_commit_are_the_diff_from_the_base_even_over_own_commits(
    manager: WorktreeManager, head: str
) -> None:
    """commit_all learns the paths of a single commit on the base; over a task's own commits
    (two commits on the base) the answer must still be the whole diff from the base."""
    wt = await manager.create("r", "t", 1, head)
    commit_file(wt.path, "agent.txt", "committed by the agent\n")
    (wt.path / "later file.txt").write_text("left for plait\n")
    commit = await manager.commit_all(wt, "plait")
    assert commit is not None
    assert await manager.changed_files(head, commit) == ["agent.txt", "later file.txt"]
    expected = git(wt.path, "diff", "--name-only", head, commit).splitlines()
    assert await manager.changed_files(head, commit) == expected


async def test_the_commit_excludes_are_written_again_if_someone_changed_the_file(
    manager: WorktreeManager, tmp_path: Path
) -> None:
    path = tmp_path / "logs" / "commit.exclude"
    await manager.write_excludes(path, ["*.tmp"])
    path.write_text("tampered\n")
    await manager.write_excludes(path, ["*.tmp"])
    assert path.read_text().endswith("*.tmp\n")
    path.unlink()
    await manager.write_excludes(path, ["*.tmp"])
    assert path.read_text().endswith("*.tmp\n")
