"""git failing under plait, and the user moving the base branch during a run.

A lock file left by a killed git is named in the message and never deleted by plait; the
work stays on plait's branches. A base branch the user moved is detected by the
compare-and-swap, the result is merged onto the new base and tested again, and the user's
commits are never overwritten.
"""

from __future__ import annotations

import os
from pathlib import Path

from plait.domain.ids import result_branch
from plait.eventstore import StoredEvent
from tests.gitrepo import commit_file, git
from tests.reliability.fault_helpers import (
    FaultHarness,
    files_on,
    of_type,
    open_harness,
    plan,
    task,
    touch,
    wait_for_file,
    wait_for_path,
    write,
)


def not_landed_reason(events: list[StoredEvent]) -> str:
    [completed] = of_type(events, "RunCompleted")
    reason: str = completed["not_landed_reason"]
    return reason


def stale(lock: Path) -> Path:
    """A lock file as a killed git leaves it: present, and old."""
    lock.parent.mkdir(parents=True, exist_ok=True)
    lock.write_text("")
    os.utime(lock, (1, 1))
    return lock


async def test_a_stale_index_lock_in_the_checkout_leaves_the_result_and_names_the_lock(
    tmp_path: Path,
) -> None:
    async with open_harness(tmp_path) as h:
        lock = stale(h.repo / ".git" / "index.lock")
        before = git(h.repo, "rev-parse", "main")
        done = await h.run(plan(task("a", write("a.txt", "a"))))
        result = done.result
        branch = result_branch(done.run_id)
        assert result.status == "kept"
        assert result.landed_on == branch
        why = not_landed_reason(done.events)
        assert why.startswith("git could not fast-forward your main checkout")
        assert str(lock) in why  # the message names the file to look at
        assert "moved" not in why  # main did not move: no false reason
        assert lock.exists()  # plait never deletes a lock it does not own
        assert git(h.repo, "rev-parse", "main") == before
        # The work is on the result branch, merged once (no retry merges piled on top).
        assert git(h.repo, "rev-parse", branch) == result.result_commit
        assert git(h.repo, "log", "--format=%s", f"main..{branch}").splitlines() == [
            "plait: merge task a",
            "plait: a",
        ]
        # Once the lock is gone, `plait land` lands it with the same safe landing.
        lock.unlink()
        landed = await h.finish(await h.service.land_run(done.run_id))
    assert (landed.result.status, landed.result.landed_on) == ("landed", "main")
    assert "a.txt" in files_on(h.repo, "main")
    assert git(h.repo, "status", "--porcelain") == ""


async def test_a_stale_ref_lock_on_the_base_fails_the_run_resumably_naming_the_lock(
    tmp_path: Path,
) -> None:
    async with open_harness(tmp_path) as h:
        git(h.repo, "switch", "--quiet", "-c", "elsewhere")  # main is not checked out
        lock = stale(h.repo / ".git" / "refs" / "heads" / "main.lock")
        before = git(h.repo, "rev-parse", "main")
        project_id = await h.project()
        failed = await h.run(plan(task("a", write("a.txt", "a")), base="main"))
        assert failed.result.status == "failed"
        assert failed.result.error is not None
        assert str(lock) in failed.result.error
        [recorded] = failed.of_type("RunFailed")
        assert str(lock) in recorded["error"]
        assert git(h.repo, "rev-parse", "main") == before
        assert "a.txt" in files_on(h.repo, result_branch(failed.run_id))  # nothing lost
        # The user removes the lock and resumes: the run lands what it had.
        lock.unlink()
        await h.service.resume_run(project_id, failed.run_id)
        done = await h.finish(failed.run_id)
    assert done.result.status == "landed", done.result.error
    assert done.result.landed_on == "main"
    assert "a.txt" in files_on(h.repo, "main")
    assert of_type(done.events, "TaskStarted") == failed.of_type("TaskStarted")  # not re-run


async def test_a_lock_left_in_a_task_worktree_fails_the_task_and_keeps_its_files(
    tmp_path: Path,
) -> None:
    async with open_harness(tmp_path) as h:
        # The task's own git dies holding its worktree's index.lock.
        leave_lock = 'touch -d "1 hour ago" "$(git rev-parse --git-dir)/index.lock"'
        done = await h.run(plan(task("a", write("a.txt", "a") + "; " + leave_lock)))
    [failed] = done.of_type("TaskFailed")
    [created] = done.of_type("WorktreeCreated")
    lock = Path(created["path"]) / ".git" / "index.lock"  # the task's own repository's
    assert str(lock) in failed["error"]
    assert "probably left by a git that was killed" in failed["error"]
    assert done.result.status == "failed"
    [kept] = done.of_type("WorkKept")
    assert kept["branch"] == f"plait/{done.run_id}/a"
    assert (Path(created["path"]) / "a.txt").read_text() == "a\n"  # the work is still there


# -- the base branch moved by the user ----------------------------------------------------


async def _run_while_the_user_commits(
    h: FaultHarness, run_task: str, user_file: str, user_text: str, **fields: object
) -> tuple[str, str]:
    """Start a one-task run whose task waits while the user commits on main in their
    checkout; returns (run id, the user's commit)."""
    started, go = h.marker("started"), h.marker("go")
    gated = f"{touch(started)}; {wait_for_file(go)}; {run_task}"
    run_id = await h.start(plan(task("a", gated), **fields))
    await wait_for_path(started)
    user_commit = commit_file(h.repo, user_file, user_text, "the user's own work")
    go.touch()
    return run_id, user_commit


def _is_ancestor(repo: Path, ancestor: str, descendant: str) -> bool:
    return git(repo, "merge-base", ancestor, descendant) == git(repo, "rev-parse", ancestor)


async def test_a_base_moved_during_the_run_is_merged_retested_and_never_overwritten(
    tmp_path: Path,
) -> None:
    async with open_harness(tmp_path) as h:
        tested = h.marker("tested")  # every commit the test command ran on
        test_command = f"git rev-parse HEAD >> {tested} && test -e README.md"
        run_id, user_commit = await _run_while_the_user_commits(
            h, write("a.txt", "a"), "user.txt", "mine\n", test_command=test_command
        )
        done = await h.finish(run_id)
    assert done.result.status == "landed", done.result.error
    assert done.result.landed_on == "main"
    main = git(h.repo, "rev-parse", "main")
    assert main == done.result.result_commit
    assert _is_ancestor(h.repo, user_commit, main)  # the user's commit is kept
    assert {"a.txt", "user.txt"} <= files_on(h.repo, "main")
    # The exact commit that landed, the run's result merged onto the user's new base, was
    # tested (that verdict is not an event yet: see docs/reliability.md).
    assert git(h.repo, "rev-parse", f"{main}^1") == user_commit
    assert main in tested.read_text().split()
    assert git(h.repo, "status", "--porcelain") == ""


async def test_a_base_moved_into_a_conflict_leaves_the_result_branch_and_a_command(
    tmp_path: Path,
) -> None:
    async with open_harness(tmp_path) as h:
        run_id, user_commit = await _run_while_the_user_commits(
            h, write("README.md", "theirs"), "README.md", "mine\n"
        )
        done = await h.finish(run_id)
    branch = result_branch(run_id)
    assert done.result.status == "kept"
    assert done.result.landed_on == branch
    assert not_landed_reason(done.events).startswith("main moved meanwhile")
    assert git(h.repo, "rev-parse", "main") == user_commit
    assert (h.repo / "README.md").read_text() == "mine\n"
    assert git(h.repo, "show", f"{branch}:README.md") == "theirs"


async def test_a_base_moved_into_red_tests_is_not_landed(tmp_path: Path) -> None:
    async with open_harness(tmp_path) as h:
        # Green alone, green with the task's file, red with both the user's and the task's.
        red_together = "! { test -e user.txt && test -e a.txt; }"
        run_id, user_commit = await _run_while_the_user_commits(
            h, write("a.txt", "a"), "user.txt", "mine\n", test_command=red_together
        )
        done = await h.finish(run_id)
    assert done.result.status == "kept"
    assert done.result.landed_on == result_branch(run_id)
    assert git(h.repo, "rev-parse", "main") == user_commit
    assert "a.txt" not in files_on(h.repo, "main")
    assert "a.txt" in files_on(h.repo, result_branch(run_id))
