"""Merge chains without a working tree, compare-and-swap refs, and landing into a checkout."""

from __future__ import annotations

from pathlib import Path

import pytest

from plait.execution.git.cli import Git
from plait.execution.git.merging import (
    LandOutcome,
    MergeError,
    land,
    merge_chain,
    update_ref_cas,
)
from tests.gitrepo import commit_file, git, make_repo

MISSING = "deadbeef" * 5


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "repo")


def task_commit(repo: Path, task: str, name: str, content: str) -> str:
    """A commit on branch task/<task> off main, made without moving main."""
    git(repo, "branch", f"task/{task}", "main")
    git(repo, "checkout", "--quiet", f"task/{task}")
    sha = commit_file(repo, name, content, f"task {task}")
    git(repo, "checkout", "--quiet", "main")
    return sha


def snapshot(repo: Path) -> tuple[str, str, str]:
    """Refs, HEAD and status: what a merge chain must leave exactly as it was."""
    return (
        git(repo, "for-each-ref"),
        git(repo, "rev-parse", "HEAD"),
        git(repo, "status", "--porcelain", "--untracked-files=all"),
    )


async def test_a_clean_chain_merges_every_task_in_order_without_touching_the_checkout(
    repo: Path,
) -> None:
    a = task_commit(repo, "a", "a.txt", "a\n")
    b = task_commit(repo, "b", "b.txt", "b\n")
    base = git(repo, "rev-parse", "main")
    before = snapshot(repo)
    chain = await merge_chain(Git(repo), "main", [("a", a), ("b", b)])
    assert snapshot(repo) == before
    assert chain.onto == base
    assert [(s.task_id, s.commit) for s in chain.steps] == [("a", a), ("b", b)]
    assert chain.conflicts == ()
    first, second = (s.merge_commit for s in chain.steps)
    assert git(repo, "rev-parse", f"{first}^1", f"{first}^2").split() == [base, a]
    assert git(repo, "rev-parse", f"{second}^1", f"{second}^2").split() == [first, b]
    assert git(repo, "log", "-1", "--format=%s", second) == "plait: merge task b"
    assert git(repo, "ls-tree", "--name-only", second).split() == [
        ".gitignore", "README.md", "a.txt", "b.txt", "src",
    ]  # fmt: skip
    assert (chain.tip, chain.tip_after(0), chain.tip_after(1)) == (second, base, first)


async def test_a_conflicting_task_is_reported_with_its_files_and_skipped(repo: Path) -> None:
    a = task_commit(repo, "a", "src/app.txt", "line 1\nA\nline 3\n")
    b = task_commit(repo, "b", "src/app.txt", "line 1\nB\nline 3\n")
    c = task_commit(repo, "c", "c.txt", "c\n")
    chain = await merge_chain(Git(repo), "main", [("a", a), ("b", b), ("c", c)])
    assert [s.task_id for s in chain.steps] == ["a", "c"]
    (conflict,) = chain.conflicts
    assert (conflict.task_id, conflict.commit, conflict.files) == ("b", b, ("src/app.txt",))
    assert git(repo, "show", f"{chain.tip}:src/app.txt") == "line 1\nA\nline 3"


async def test_an_unknown_commit_is_refused_clearly_before_anything_is_merged(
    repo: Path,
) -> None:
    a = task_commit(repo, "a", "a.txt", "a\n")
    objects_before = git(repo, "count-objects")
    with pytest.raises(MergeError, match=f"task 'ghost': commit '{MISSING}' does not exist"):
        await merge_chain(Git(repo), "main", [("a", a), ("ghost", MISSING)])
    assert git(repo, "count-objects") == objects_before


async def test_a_task_already_contained_in_the_tip_adds_no_merge_commit(repo: Path) -> None:
    base = git(repo, "rev-parse", "main")
    chain = await merge_chain(Git(repo), "main", [("noop", base)])
    assert [(s.task_id, s.merge_commit) for s in chain.steps] == [("noop", base)]


async def test_an_empty_chain_is_just_the_base(repo: Path) -> None:
    chain = await merge_chain(Git(repo), "main", [])
    assert (chain.tip, chain.steps, chain.conflicts) == (git(repo, "rev-parse", "main"), (), ())


async def test_compare_and_swap_moves_the_ref_then_refuses_once_it_has_moved(
    repo: Path,
) -> None:
    old = git(repo, "rev-parse", "main")
    git(repo, "branch", "integration", old)
    new = task_commit(repo, "a", "a.txt", "a\n")
    assert await update_ref_cas(Git(repo), "refs/heads/integration", new, old)
    assert git(repo, "rev-parse", "integration") == new
    assert not await update_ref_cas(Git(repo), "refs/heads/integration", old, old)
    assert git(repo, "rev-parse", "integration") == new


@pytest.mark.parametrize("ref", ["main", "--upload-pack=x", "refs/heads/../x"])
async def test_compare_and_swap_wants_a_valid_full_ref(repo: Path, ref: str) -> None:
    head = git(repo, "rev-parse", "HEAD")
    with pytest.raises(ValueError, match=r"full ref|invalid ref name"):
        await update_ref_cas(Git(repo), ref, head, head)


async def test_landing_a_branch_nobody_has_checked_out_updates_the_ref(repo: Path) -> None:
    old = git(repo, "rev-parse", "main")
    git(repo, "branch", "release", old)
    new = task_commit(repo, "a", "a.txt", "a\n")
    result = await land(Git(repo), "release", new, old)
    assert (result.outcome, result.landed, result.worktree) == (LandOutcome.REF_UPDATED, True, None)
    assert git(repo, "rev-parse", "release") == new


async def test_landing_into_a_clean_checkout_fast_forwards_its_files(repo: Path) -> None:
    old = git(repo, "rev-parse", "main")
    chain = await merge_chain(Git(repo), "main", [("a", task_commit(repo, "a", "a.txt", "a\n"))])
    result = await land(Git(repo), "main", chain.tip, old)
    assert result.outcome is LandOutcome.CHECKOUT_FAST_FORWARDED
    assert result.worktree == repo.resolve()
    assert git(repo, "rev-parse", "HEAD") == chain.tip
    assert (repo / "a.txt").read_text() == "a\n"
    assert git(repo, "status", "--porcelain") == ""


@pytest.mark.parametrize("dirt", ["modified", "staged", "untracked"])
async def test_landing_into_a_dirty_checkout_is_refused_and_leaves_every_byte_alone(
    repo: Path, dirt: str
) -> None:
    old = git(repo, "rev-parse", "main")
    chain = await merge_chain(Git(repo), "main", [("a", task_commit(repo, "a", "a.txt", "a\n"))])
    user_file = repo / ("notes.txt" if dirt == "untracked" else "src/app.txt")
    user_file.write_bytes(b"user's unsaved work\r\n\x00")
    if dirt == "staged":
        git(repo, "add", "src/app.txt")
    index_before = (repo / ".git" / "index").read_bytes()
    result = await land(Git(repo), "main", chain.tip, old)
    assert (result.outcome, result.landed) == (LandOutcome.CHECKOUT_DIRTY, False)
    assert chain.tip in result.detail
    assert user_file.read_bytes() == b"user's unsaved work\r\n\x00"
    assert (repo / ".git" / "index").read_bytes() == index_before
    assert git(repo, "rev-parse", "HEAD") == old
    assert not (repo / "a.txt").exists()


async def test_ignored_files_do_not_make_a_checkout_dirty(repo: Path) -> None:
    (repo / ".env").write_text("SECRET=1\n")
    old = git(repo, "rev-parse", "main")
    new = task_commit(repo, "a", "a.txt", "a\n")
    result = await land(Git(repo), "main", new, old)
    assert result.outcome is LandOutcome.CHECKOUT_FAST_FORWARDED
    assert (repo / ".env").read_text() == "SECRET=1\n"


async def test_landing_after_the_user_committed_reports_a_moved_base(repo: Path) -> None:
    old = git(repo, "rev-parse", "main")
    new = task_commit(repo, "a", "a.txt", "a\n")
    users = commit_file(repo, "user.txt", "mine\n")
    result = await land(Git(repo), "main", new, old)
    assert (result.outcome, result.landed) == (LandOutcome.BASE_MOVED, False)
    assert git(repo, "rev-parse", "HEAD") == users


async def test_landing_a_branch_checked_out_in_a_linked_worktree_fast_forwards_there(
    repo: Path, tmp_path: Path
) -> None:
    old = git(repo, "rev-parse", "main")
    git(repo, "branch", "develop", old)
    linked = tmp_path / "develop"
    git(repo, "worktree", "add", "--quiet", str(linked), "develop")
    new = task_commit(repo, "a", "a.txt", "a\n")
    result = await land(Git(repo), "develop", new, old)
    assert (result.outcome, result.worktree) == (
        LandOutcome.CHECKOUT_FAST_FORWARDED,
        linked.resolve(),
    )
    assert (linked / "a.txt").read_text() == "a\n"
    assert git(linked, "status", "--porcelain") == ""


async def test_landing_wants_a_short_branch_name(repo: Path) -> None:
    head = git(repo, "rev-parse", "HEAD")
    with pytest.raises(ValueError, match="short branch name"):
        await land(Git(repo), "refs/heads/main", head, head)


async def test_a_task_whose_change_was_merged_already_by_another_is_still_merged(
    repo: Path,
) -> None:
    """Same content, different commits: the tree matches the tip's, but the task's commit is
    not in it, so it must get its merge (the tree alone does not tell)."""
    a = task_commit(repo, "a", "same.txt", "same\n")
    b = task_commit(repo, "b", "same.txt", "same\n")
    chain = await merge_chain(Git(repo), "main", [("a", a), ("b", b)])
    assert [s.task_id for s in chain.steps] == ["a", "b"]
    second = chain.steps[1].merge_commit
    assert git(repo, "merge-base", "--is-ancestor", b, second) == ""  # b is in the result
    assert git(repo, "rev-parse", f"{second}^2") == b


async def test_a_commit_merged_in_an_earlier_step_adds_no_second_merge(repo: Path) -> None:
    a = task_commit(repo, "a", "a.txt", "a\n")
    chain = await merge_chain(Git(repo), "main", [("a", a), ("again", a)])
    first = chain.steps[0].merge_commit
    assert [(s.task_id, s.merge_commit) for s in chain.steps] == [("a", first), ("again", first)]
