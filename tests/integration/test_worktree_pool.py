"""WorktreePool against real git: reuse, isolation, kept commits, concurrency, sparse, recovery."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from pathlib import Path

import pytest

from plait.execution.git.cli import Git
from plait.execution.worktrees import repo_files
from plait.execution.worktrees.manager import Worktree, WorktreeError, WorktreeManager
from plait.execution.worktrees.pool import Released, WorktreePool
from tests.gitrepo import ENV, commit_file, git, make_repo


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = make_repo(tmp_path / "repo")
    commit_file(path, ".gitignore", ".env\nbuild/\nnode_modules/\n")
    commit_file(path, "lib/deep/util.txt", "util\n")
    return path


@pytest.fixture
def manager(repo: Path) -> WorktreeManager:
    return WorktreeManager(Git(repo))


@pytest.fixture
def pool(manager: WorktreeManager) -> WorktreePool:
    return WorktreePool(manager)


@pytest.fixture
def head(repo: Path) -> str:
    return git(repo, "rev-parse", "HEAD")


def files_on_disk(worktree: Path) -> dict[str, bytes]:
    """Every file under the worktree except its repository's (`.git`), with its content."""
    return {
        p.relative_to(worktree).as_posix(): p.read_bytes()
        for p in worktree.rglob("*")
        if p.is_file() and p.relative_to(worktree).parts[0] != ".git"
    }


def files_of_commit(repo: Path, sha: str) -> dict[str, bytes]:
    names = git(repo, "ls-tree", "-r", "--name-only", sha).splitlines()
    return {name: (git(repo, "show", f"{sha}:{name}") + "\n").encode() for name in names}


def write(root: Path, name: str, content: str) -> None:
    (root / name).parent.mkdir(parents=True, exist_ok=True)
    (root / name).write_text(content)


async def finished(manager: WorktreeManager, worktree: Worktree) -> str:
    """Commit whatever the task left, as the orchestrator does before releasing."""
    commit = await manager.commit_all(worktree, "task work")
    assert commit is not None
    return commit


async def test_a_released_worktree_is_reused_for_the_next_task(
    repo: Path, manager: WorktreeManager, pool: WorktreePool, head: str
) -> None:
    first = await pool.acquire("run1", "task-a", 1, head)
    write(first.path, "a.txt", "from a\n")
    await finished(manager, first)
    assert await pool.release(first) is Released.POOLED

    second = await pool.acquire("run1", "task-b", 1, head)
    assert second.path == first.path
    assert second.branch == "plait/run1/task-b"
    assert second.worktree_id == "run1/task-b.1"
    assert git(second.path, "rev-parse", "HEAD") == head
    assert git(second.path, "symbolic-ref", "--short", "HEAD") == "plait/run1/task-b"
    assert git(repo, "rev-parse", "plait/run1/task-a") != head


async def test_pooled_worktrees_live_under_the_worktree_root_where_git_lists_them(
    repo: Path, manager: WorktreeManager, pool: WorktreePool, head: str
) -> None:
    wt = await pool.acquire("run1", "t", 1, head)
    assert wt.path == (await manager.root()) / "_pool" / "1"
    assert not wt.path.is_relative_to(repo.resolve())
    listed = {e.path: e for e in await manager.list_porcelain()}
    assert listed[wt.path].branch_name == "plait/run1/t"


async def test_a_reused_worktree_has_exactly_the_files_of_the_new_base(
    repo: Path, manager: WorktreeManager, pool: WorktreePool, head: str
) -> None:
    first = await pool.acquire("run1", "a", 1, head)
    write(first.path, "created.txt", "new\n")
    write(first.path, "README.md", "# rewritten\n")
    (first.path / "src" / "app.txt").unlink()
    await finished(manager, first)
    write(first.path, "lib/deep/util.txt", "uncommitted edit\n")
    (first.path / "README.md").unlink()
    write(first.path, "untracked/dir/junk.txt", "junk\n")
    write(first.path, ".env", "SECRET=1\n")
    write(first.path, "build/out.o", "binary\n")
    write(first.path, "node_modules/pkg/index.js", "module\n")
    git(first.path, "init", "--quiet", "nested")
    await pool.release(first)

    new_base = commit_file(repo, "src/app.txt", "moved on\n")
    second = await pool.acquire("run1", "b", 1, new_base)

    assert second.path == first.path
    assert files_on_disk(second.path) == files_of_commit(repo, new_base)
    assert not (second.path / "nested").exists()
    assert git(second.path, "status", "--porcelain", "--ignored") == ""


async def test_ignored_build_state_stays_when_the_plan_keeps_it(
    manager: WorktreeManager, pool: WorktreePool, head: str
) -> None:
    first = await pool.acquire("run1", "a", 1, head)
    write(first.path, "node_modules/pkg/index.js", "module\n")
    write(first.path, "build/out.o", "binary\n")
    write(first.path, "src/new.txt", "work\n")
    await finished(manager, first)
    write(first.path, "junk.txt", "untracked\n")
    await pool.release(first)

    second = await pool.acquire("run1", "b", 1, head, keep_ignored=True)

    assert second.path == first.path
    assert (second.path / "node_modules/pkg/index.js").read_text() == "module\n"
    assert (second.path / "build/out.o").exists()
    assert not (second.path / "src/new.txt").exists()
    assert not (second.path / "junk.txt").exists()


async def test_a_recycled_worktree_keeps_only_the_declared_outputs_and_not_their_caches(
    manager: WorktreeManager, pool: WorktreePool, head: str
) -> None:
    first = await pool.acquire("run1", "a", 1, head)
    write(first.path, "node_modules/pkg/index.js", "module\n")
    write(first.path, "node_modules/pkg/__pycache__/x.cpython-311.pyc", "stale\n")
    write(first.path, "node_modules/.pytest_cache/v/cache/lastfailed", "{}\n")
    write(first.path, "build/out.o", "binary\n")
    write(first.path, "lib/__pycache__/util.cpython-311.pyc", "stale\n")
    await pool.release(first)

    second = await pool.acquire("run1", "b", 1, head, keep=["node_modules"])

    assert second.path == first.path
    assert (second.path / "node_modules/pkg/index.js").read_text() == "module\n"
    assert not (second.path / "node_modules/pkg/__pycache__").exists()
    assert not (second.path / "node_modules/.pytest_cache").exists()
    assert not (second.path / "build").exists()
    assert not (second.path / "lib/__pycache__").exists()
    assert pool.discarded == []


async def test_ignored_files_are_removed_unless_the_plan_keeps_them(
    pool: WorktreePool, head: str
) -> None:
    first = await pool.acquire("run1", "a", 1, head)
    write(first.path, "node_modules/pkg/index.js", "module\n")
    await pool.release(first)

    second = await pool.acquire("run1", "b", 1, head)

    assert second.path == first.path
    assert not (second.path / "node_modules").exists()


async def test_a_file_the_new_base_no_longer_ignores_is_removed_even_when_keeping_ignored(
    repo: Path, pool: WorktreePool, head: str
) -> None:
    first = await pool.acquire("run1", "a", 1, head)
    write(first.path, "build/out.o", "binary\n")
    await pool.release(first)
    new_base = commit_file(repo, ".gitignore", ".env\nnode_modules/\n")

    second = await pool.acquire("run1", "b", 1, new_base, keep_ignored=True)

    assert not (second.path / "build").exists()


async def test_a_worktree_holding_a_commit_no_branch_reaches_is_never_recycled(
    manager: WorktreeManager, pool: WorktreePool, head: str
) -> None:
    first = await pool.acquire("run1", "a", 1, head)
    git(first.path, "checkout", "--quiet", "--detach")
    lost = commit_file(first.path, "precious.txt", "only here\n")

    assert await pool.release(first) is Released.KEPT

    assert git(first.path, "rev-parse", "HEAD") == lost
    assert (first.path / "precious.txt").read_text() == "only here\n"
    second = await pool.acquire("run1", "b", 1, head)
    assert second.path != first.path
    assert pool.leased == 2


async def test_a_worktree_whose_branch_was_deleted_under_it_is_never_recycled(
    repo: Path, manager: WorktreeManager, pool: WorktreePool, head: str
) -> None:
    first = await pool.acquire("run1", "a", 1, head)
    write(first.path, "work.txt", "unmerged\n")
    commit = await finished(manager, first)
    git(repo, "update-ref", "-d", "refs/heads/plait/run1/a")

    assert await pool.release(first) is Released.KEPT
    assert (first.path / "work.txt").read_text() == "unmerged\n"
    assert git(first.path, "cat-file", "-t", commit) == "commit"


async def test_a_kept_worktree_is_pooled_once_its_commit_is_on_a_branch(
    repo: Path, pool: WorktreePool, head: str
) -> None:
    first = await pool.acquire("run1", "a", 1, head)
    git(first.path, "checkout", "--quiet", "--detach")
    lost = commit_file(first.path, "precious.txt", "only here\n")
    assert await pool.release(first) is Released.KEPT

    # Its commit is in the slot's own repository: rescued into the user's, on a branch.
    git(repo, "fetch", "--quiet", str(first.path), f"{lost}:refs/heads/rescued")

    assert await pool.release(first) is Released.POOLED


async def test_a_task_that_committed_then_reset_back_to_its_base_keeps_its_slot(
    pool: WorktreePool, head: str
) -> None:
    first = await pool.acquire("run1", "a", 1, head)
    lost = commit_file(first.path, "precious.txt", "only here\n")
    git(first.path, "reset", "--quiet", "--hard", head)

    assert await pool.release(first) is Released.KEPT
    assert git(first.path, "cat-file", "-t", lost) == "commit"


async def test_the_commit_a_task_reset_away_is_saved_at_its_kept_ref_and_the_slot_then_pooled(
    repo: Path, manager: WorktreeManager, pool: WorktreePool, head: str
) -> None:
    first = await pool.acquire("run1", "a", 1, head)
    lost = commit_file(first.path, "precious.txt", "only here\n")
    git(first.path, "reset", "--quiet", "--hard", head)
    saved = await manager.save(first, "task work", kept_ref="refs/plait/kept/run1/a/1")
    assert saved.kept is not None

    assert await pool.release(first) is Released.POOLED
    git(repo, "merge-base", "--is-ancestor", lost, "refs/plait/kept/run1/a/1")


def commit_into_users_store(repo: Path, slot: Path, name: str) -> str:
    """A commit the task writes into the user's object store itself (not its own): the
    slot's store stays empty, yet no ref of the user's reaches the commit."""
    (slot / name).write_text("only here\n")
    env = {
        **ENV,
        "GIT_OBJECT_DIRECTORY": str(repo / ".git" / "objects"),
        "GIT_ALTERNATE_OBJECT_DIRECTORIES": str(slot / ".git" / "objects"),
    }
    for argv in (["add", "--", name], ["commit", "--quiet", "-m", f"change {name}"]):
        subprocess.run(["git", *argv], cwd=slot, env=env, check=True, capture_output=True)
    assert not repo_files.has_own_objects(slot)
    return git(slot, "rev-parse", "HEAD")


async def test_a_commit_the_task_wrote_into_the_users_store_and_reset_away_keeps_its_slot(
    repo: Path, pool: WorktreePool, head: str
) -> None:
    first = await pool.acquire("run1", "a", 1, head)
    lost = commit_into_users_store(repo, first.path, "precious.txt")
    git(first.path, "reset", "--quiet", "--hard", head)

    assert await pool.release(first) is Released.KEPT
    assert git(repo, "cat-file", "-t", lost) == "commit"


async def test_a_commit_only_a_packed_tag_of_the_slot_names_keeps_its_slot(
    repo: Path, pool: WorktreePool, head: str
) -> None:
    first = await pool.acquire("run1", "a", 1, head)
    commit_into_users_store(repo, first.path, "precious.txt")
    git(first.path, "tag", "mine")
    git(first.path, "reset", "--quiet", "--hard", head)
    git(first.path, "pack-refs", "--all")
    shutil.rmtree(first.path / ".git" / "logs")

    assert await pool.release(first) is Released.KEPT


async def test_a_commit_only_a_symbolic_ref_of_the_slot_reaches_keeps_its_slot(
    repo: Path, pool: WorktreePool, head: str
) -> None:
    first = await pool.acquire("run1", "a", 1, head)
    lost = commit_into_users_store(repo, first.path, "precious.txt")
    git(first.path, "reset", "--quiet", "--hard", head)
    (first.path / ".git" / "ORIG_HEAD").write_text(f"{lost}\n")
    (first.path / ".git" / "refs" / "heads" / "pointer").write_text("ref: ORIG_HEAD\n")
    shutil.rmtree(first.path / ".git" / "logs")

    assert await pool.release(first) is Released.KEPT


async def test_concurrent_acquires_get_distinct_worktrees(
    repo: Path, pool: WorktreePool, head: str
) -> None:
    warm = await asyncio.gather(*(pool.acquire("run1", f"w{i}", 1, head) for i in range(3)))
    await asyncio.gather(*(pool.release(w) for w in warm))

    tasks = await asyncio.gather(*(pool.acquire("run2", f"t{i}", 1, head) for i in range(5)))

    assert len({t.path for t in tasks}) == 5
    assert {w.path for w in warm} < {t.path for t in tasks}
    for i, task in enumerate(tasks):
        assert git(task.path, "symbolic-ref", "--short", "HEAD") == f"plait/run2/t{i}"
        assert git(task.path, "status", "--porcelain", "--ignored") == ""
    outcomes = await asyncio.gather(*(pool.release(t) for t in tasks))
    assert sorted(o.value for o in outcomes) == ["pooled"] * 4 + ["removed"]


async def test_the_pool_keeps_at_most_max_idle_worktrees(
    manager: WorktreeManager, head: str
) -> None:
    pool = WorktreePool(manager, max_idle=1)
    first = await pool.acquire("run1", "a", 1, head)
    second = await pool.acquire("run1", "b", 1, head)

    assert await pool.release(first) is Released.POOLED
    assert await pool.release(second) is Released.REMOVED
    assert not second.path.exists()
    assert pool.idle == 1


async def test_drain_removes_idle_worktrees_and_leaves_git_listing_only_the_checkout(
    repo: Path, manager: WorktreeManager, pool: WorktreePool, head: str
) -> None:
    worktrees = [await pool.acquire("run1", t, 1, head) for t in ("a", "b")]
    for wt in worktrees:
        await pool.release(wt)

    assert await pool.drain() == 2

    assert [e.path for e in await manager.list_porcelain()] == [repo.resolve()]
    assert not (await pool.directory()).exists()
    assert pool.idle == 0


async def test_drain_leaves_leased_worktrees_alone(
    manager: WorktreeManager, pool: WorktreePool, head: str
) -> None:
    busy = await pool.acquire("run1", "a", 1, head)
    await pool.release(await pool.acquire("run1", "b", 1, head))

    assert await pool.drain() == 1

    assert busy.path.exists()
    assert await pool.release(busy) is Released.POOLED


async def test_releasing_a_worktree_the_pool_did_not_lease_is_refused(
    manager: WorktreeManager, pool: WorktreePool, head: str
) -> None:
    foreign = await manager.create("run1", "a", 1, head)
    with pytest.raises(WorktreeError, match="not a worktree leased"):
        await pool.release(foreign)


async def test_the_first_attempt_refuses_to_reset_an_existing_branch(
    repo: Path, pool: WorktreePool, head: str
) -> None:
    git(repo, "branch", "plait/run1/a", "HEAD~1")
    with pytest.raises(WorktreeError, match="already exists"):
        await pool.acquire("run1", "a", 1, head)
    assert git(repo, "rev-parse", "plait/run1/a") == git(repo, "rev-parse", "HEAD~1")


async def test_a_retry_moves_the_task_branch_to_the_new_base(
    repo: Path, manager: WorktreeManager, pool: WorktreePool, head: str
) -> None:
    first = await pool.acquire("run1", "a", 1, head)
    write(first.path, "work.txt", "failed attempt\n")
    await finished(manager, first)
    await pool.release(first)
    new_base = commit_file(repo, "base.txt", "moved on\n")

    second = await pool.acquire("run1", "a", 2, new_base)

    assert second.worktree_id == "run1/a.2"
    assert git(repo, "rev-parse", "plait/run1/a") == new_base
    assert not (second.path / "work.txt").exists()


async def test_a_stale_file_hidden_from_git_status_makes_the_pool_use_a_fresh_worktree(
    repo: Path, pool: WorktreePool, head: str
) -> None:
    first = await pool.acquire("run1", "a", 1, head)
    git(first.path, "update-index", "--assume-unchanged", "README.md")
    write(first.path, "README.md", "stale edit git cannot see\n")
    await pool.release(first)

    second = await pool.acquire("run1", "b", 1, head)

    assert files_on_disk(second.path) == files_of_commit(repo, head)
    assert [reason for _, reason in pool.discarded] == [
        "index entry flagged 'h': README.md",
    ]


async def test_a_sparse_task_sees_only_its_declared_paths_and_root_files(
    repo: Path, pool: WorktreePool, head: str
) -> None:
    wt = await pool.acquire("run1", "a", 1, head, sparse_paths=["lib/deep/util.txt"])

    assert set(files_on_disk(wt.path)) == {".gitignore", "README.md", "lib/deep/util.txt"}
    assert git(wt.path, "status", "--porcelain", "--ignored") == ""


async def test_a_reused_worktree_switches_between_sparse_and_full_checkouts(
    repo: Path, manager: WorktreeManager, pool: WorktreePool, head: str
) -> None:
    full = await pool.acquire("run1", "a", 1, head)
    write(full.path, "src/extra.txt", "work\n")
    await finished(manager, full)
    await pool.release(full)

    sparse = await pool.acquire("run1", "b", 1, head, sparse_paths=["src"])
    assert sparse.path == full.path
    assert set(files_on_disk(sparse.path)) == {".gitignore", "README.md", "src/app.txt"}
    write(sparse.path, "lib/leak.txt", "outside the declared paths\n")
    await pool.release(sparse)

    again = await pool.acquire("run1", "c", 1, head)
    assert again.path == full.path
    assert files_on_disk(again.path) == files_of_commit(repo, head)


async def test_a_new_pool_takes_back_idle_slots_an_earlier_one_left(
    manager: WorktreeManager, pool: WorktreePool, head: str
) -> None:
    idle = await pool.acquire("run1", "a", 1, head)
    busy = await pool.acquire("run1", "b", 1, head)
    await pool.release(idle)

    restarted = WorktreePool(manager)
    leftovers = await restarted.recover()

    assert [(w.path, w.branch) for w in leftovers] == [(busy.path, "plait/run1/b")]
    assert (await restarted.acquire("run2", "c", 1, head)).path == idle.path
    assert await restarted.release(leftovers[0]) is Released.POOLED


async def test_a_leased_worktree_can_be_removed_for_good_with_its_merged_branch(
    repo: Path, pool: WorktreePool, head: str
) -> None:
    wt = await pool.acquire("run1", "a", 1, head)

    await pool.remove(wt, delete_branch=True)

    assert not wt.path.exists()
    assert git(repo, "branch", "--list", "plait/run1/a") == ""
    assert pool.leased == 0


async def test_removing_a_worktree_that_holds_a_commit_no_branch_reaches_is_refused(
    pool: WorktreePool, head: str
) -> None:
    wt = await pool.acquire("run1", "a", 1, head)
    git(wt.path, "checkout", "--quiet", "--detach")
    commit_file(wt.path, "precious.txt", "only here\n")

    with pytest.raises(WorktreeError, match="on no branch"):
        await pool.remove(wt)
    assert (wt.path / "precious.txt").exists()


async def test_releasing_the_same_worktree_twice_at_once_pools_it_once(
    pool: WorktreePool, head: str
) -> None:
    wt = await pool.acquire("run1", "a", 1, head)

    outcomes = await asyncio.gather(pool.release(wt), pool.release(wt), return_exceptions=True)

    assert outcomes[0] is Released.POOLED
    assert isinstance(outcomes[1], WorktreeError)
    assert (pool.idle, pool.leased) == (1, 0)


async def test_a_slot_is_a_repository_of_its_own_and_keeps_no_git_state_of_its_last_task(
    repo: Path, manager: WorktreeManager, pool: WorktreePool, head: str
) -> None:
    users_config = (repo / ".git" / "config").read_bytes()
    first = await pool.acquire("run1", "a", 1, head)
    hooked = first.path.parent / "hooked"
    git(first.path, "config", "alias.st", "status")
    git(first.path, "tag", "mine")
    git(first.path, "checkout", "--quiet", "-b", "elsewhere")
    hook = first.path / ".git" / "hooks" / "post-checkout"
    hook.parent.mkdir(parents=True, exist_ok=True)
    hook.write_text(f"#!/bin/sh\ntouch {hooked}\n")
    hook.chmod(0o755)
    write(first.path, "work.txt", "work\n")
    await finished(manager, first)
    assert await pool.release(first) is Released.POOLED

    second = await pool.acquire("run1", "b", 1, head)

    assert second.path == first.path
    assert (repo / ".git" / "config").read_bytes() == users_config
    assert "alias" not in (second.path / ".git" / "config").read_text()
    assert git(second.path, "for-each-ref", "--format=%(refname)").splitlines() == [
        "refs/heads/plait/run1/b"
    ]
    assert not hook.exists()
    assert not hooked.exists()
    assert git(repo, "rev-parse", "refs/heads/plait/run1/b") == head


async def test_a_slot_whose_repository_was_linked_to_the_users_is_kept_and_never_recycled(
    repo: Path, pool: WorktreePool, head: str
) -> None:
    first = await pool.acquire("run1", "a", 1, head)
    write(first.path, "work.txt", "the work\n")
    git_dir = first.path / ".git"
    shutil.rmtree(git_dir)
    git_dir.symlink_to(repo / ".git")
    users_head = (repo / ".git" / "HEAD").read_bytes()
    users_index = (repo / ".git" / "index").read_bytes()

    assert await pool.release(first) is Released.KEPT
    second = await pool.acquire("run1", "b", 1, head)

    assert second.path != first.path
    assert (first.path / "work.txt").read_text() == "the work\n"
    assert (repo / ".git" / "HEAD").read_bytes() == users_head
    assert (repo / ".git" / "index").read_bytes() == users_index


async def test_an_idle_linked_slot_an_older_plait_left_is_removed_not_recycled(
    repo: Path, pool: WorktreePool, head: str
) -> None:
    old_slot = (await pool.directory()) / "1"
    old_slot.parent.mkdir(parents=True, exist_ok=True)
    git(repo, "worktree", "add", "--quiet", "--detach", str(old_slot), head)

    assert await pool.recover() == []
    wt = await pool.acquire("run1", "a", 1, head)

    assert pool.idle == 0
    assert (wt.path / ".git").is_dir()  # a task repository of its own
    assert str(old_slot) not in git(repo, "worktree", "list", "--porcelain")
