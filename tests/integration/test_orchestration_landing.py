"""Landing the run's result on the base branch without ever touching the user's work."""

from __future__ import annotations

import shlex
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.gitrepo import commit_file, git
from tests.integration.orchestration_helpers import (
    WORKTREE_MODES,
    Harness,
    branch_tip,
    file_on,
    files_on,
    fingerprint,
    of_type,
    open_harness,
    plait_branches,
    plan,
    task,
    write,
)


@pytest.fixture(params=WORKTREE_MODES)
async def harness(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Harness]:
    """Each test with fresh task repositories and with pooled ones: the same promises."""
    async with open_harness(tmp_path, reuse_worktrees=request.param == "pooled") as opened:
        yield opened


async def test_a_dirty_checkout_of_the_base_branch_is_left_byte_for_byte_untouched(
    harness: Harness,
) -> None:
    repo = harness.repo
    (repo / "src" / "app.txt").write_text("line 1\nmy unsaved edit\n")  # modified, unstaged
    (repo / "staged.txt").write_text("staged\n")
    git(repo, "add", "staged.txt")  # staged: the index differs from HEAD
    (repo / "notes.txt").write_text("untracked\n")
    (repo / ".env").write_text("SECRET=1\n")  # ignored
    base = branch_tip(repo, "main")
    before = fingerprint(repo)

    done = await harness.run(plan(task("feature", write("feature.txt", "feature"))))

    assert fingerprint(repo) == before
    assert branch_tip(repo, "main") == base
    assert done.result.status == "kept", done.result.error
    result_branch = f"plait/{done.run_id}/_result"
    assert done.result.landed_on == result_branch
    completed = of_type(done.events, "RunCompleted")[0]
    assert completed["landed_on"] == result_branch
    assert completed["land_command"] == f"plait land {done.run_id}"
    assert completed["not_landed_reason"] == f"your main checkout at {repo} has local changes"
    assert "feature.txt" in files_on(repo, result_branch)
    assert plait_branches(repo) == [result_branch]


async def test_a_clean_checkout_of_the_base_branch_is_fast_forwarded(harness: Harness) -> None:
    done = await harness.run(plan(task("feature", write("feature.txt", "feature"))))

    assert (done.result.status, done.result.landed_on) == ("landed", "main")
    assert of_type(done.events, "RunCompleted")[0]["land_command"] is None
    assert (harness.repo / "feature.txt").read_text() == "feature\n"
    assert git(harness.repo, "status", "--porcelain") == ""
    assert git(harness.repo, "rev-parse", "HEAD") == done.result.result_commit


async def test_a_base_branch_checked_out_nowhere_is_moved_by_compare_and_swap(
    harness: Harness,
) -> None:
    repo = harness.repo
    git(repo, "checkout", "--quiet", "-b", "elsewhere")
    elsewhere = branch_tip(repo, "elsewhere")
    before = fingerprint(repo)

    done = await harness.run(plan(task("feature", write("feature.txt", "f")), base="main"))

    assert done.result.status == "landed", done.result.error
    assert done.result.landed_on == "main"
    assert branch_tip(repo, "main") == done.result.result_commit
    assert "feature.txt" in files_on(repo, "main")
    assert branch_tip(repo, "elsewhere") == elsewhere
    assert fingerprint(repo) == before
    assert plait_branches(repo) == []


def moves_main_to(repo: Path, commit: str) -> str:
    """A task command that plays the user: while the run goes on, main moves to `commit`."""
    return f"git -C {shlex.quote(str(repo))} update-ref refs/heads/main {commit} && " + write(
        "feature.txt", "f"
    )


def users_commit_off_main(repo: Path, name: str, content: str) -> str:
    """A commit of the user's on top of main; afterwards main is checked out nowhere."""
    git(repo, "checkout", "--quiet", "-b", "elsewhere")
    commit = commit_file(repo, name, content)
    git(repo, "checkout", "--quiet", "--detach", "elsewhere~1")
    return commit


async def test_a_base_branch_the_user_moved_during_the_run_keeps_their_commit_and_gets_ours(
    harness: Harness,
) -> None:
    repo = harness.repo
    users_commit = users_commit_off_main(repo, "users.txt", "the user's own work\n")

    done = await harness.run(
        plan(task("feature", moves_main_to(repo, users_commit)), base="main", test_command="true")
    )

    assert done.result.status == "landed", done.result.error
    assert done.result.landed_on == "main"
    assert branch_tip(repo, "main") == done.result.result_commit
    ancestry = ["merge-base", "--is-ancestor", users_commit, "main"]
    assert subprocess.run(["git", *ancestry], cwd=repo, check=False).returncode == 0
    assert {"users.txt", "feature.txt"} <= files_on(repo, "main")


async def test_a_base_branch_the_user_moved_to_a_conflicting_commit_is_not_overwritten(
    harness: Harness,
) -> None:
    repo = harness.repo
    users_commit = users_commit_off_main(repo, "feature.txt", "the user's version\n")

    done = await harness.run(
        plan(task("feature", moves_main_to(repo, users_commit)), base="main", test_command="true")
    )

    assert branch_tip(repo, "main") == users_commit
    assert done.result.status == "kept", done.result.error
    result_branch = f"plait/{done.run_id}/_result"
    assert done.result.landed_on == result_branch
    assert "main moved meanwhile" in of_type(done.events, "RunCompleted")[0]["not_landed_reason"]
    assert file_on(repo, result_branch, "feature.txt") == "f"
