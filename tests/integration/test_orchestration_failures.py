"""Failed setups and tasks: reported, retried in fresh worktrees, and when they keep failing,
the run stops at that batch with the unlanded work kept. A good run leaves nothing behind."""

from __future__ import annotations

import shlex
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from plait.eventstore import StoredEvent
from plait.execution.worktrees.manager import POOL_DIR
from tests.gitrepo import git
from tests.integration.orchestration_helpers import (
    WORKTREE_MODES,
    Harness,
    branch_tip,
    file_on,
    files_on,
    of_type,
    open_harness,
    plait_branches,
    plan,
    task,
    types_of,
    worktree_paths,
    write,
)


def worktrees_of(events: list[StoredEvent], task_id: str) -> list[str]:
    return [c["path"] for c in of_type(events, "WorktreeCreated") if c["task_id"] == task_id]


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    async with open_harness(tmp_path) as opened:
        yield opened


async def test_a_failed_setup_command_is_reported_with_its_output_and_retried(
    harness: Harness,
) -> None:
    done = await harness.run(
        plan(
            task("feature", write("feature.txt", "f")),
            setup_command="echo 'npm ERR! no lockfile here' >&2; exit 3",
            retries=1,
        )
    )

    assert done.result.status == "failed"
    failures = of_type(done.events, "TaskFailed")
    assert [(f["attempt"], f["exit_code"], f["will_retry"]) for f in failures] == [
        (1, 3, True),
        (2, 3, False),
    ]
    for failure in failures:
        assert "setup command failed" in failure["error"]
        assert "npm ERR! no lockfile here" in failure["error"]
    # The task's own command never ran: nothing of it was committed.
    assert of_type(done.events, "TaskSucceeded") == []


async def test_a_failed_task_is_retried_in_a_fresh_worktree_and_lands(harness: Harness) -> None:
    marker = shlex.quote(str(harness.shared / "failed-once"))
    # Leaves a stray file, then fails; the second attempt must not see the stray file.
    first_fails = (
        f"if [ ! -e {marker} ]; then touch {marker} stray.txt; exit 1; fi; "
        "test ! -e stray.txt && " + write("feature.txt", "f")
    )
    done = await harness.run(plan(task("feature", first_fails), retries=1))

    assert done.result.status == "landed", done.result.error
    created = of_type(done.events, "WorktreeCreated")
    assert [c["attempt"] for c in created] == [1, 2]
    assert created[0]["path"] != created[1]["path"]
    assert created[0]["worktree_id"] != created[1]["worktree_id"]
    assert [s["attempt"] for s in of_type(done.events, "TaskStarted")] == [1, 2]
    assert [(f["attempt"], f["will_retry"]) for f in of_type(done.events, "TaskFailed")] == [
        (1, True)
    ]
    assert of_type(done.events, "TaskSucceeded")[0]["attempt"] == 2
    assert "feature.txt" in files_on(harness.repo, "main")
    assert "stray.txt" not in files_on(harness.repo, "main")


async def test_a_task_that_keeps_failing_fails_its_batch_and_later_batches_never_start(
    harness: Harness,
) -> None:
    # Commits half its work in its worktree, then fails: that work must not be lost.
    broken = write("half-done.txt", "work in progress") + " && exit 4"
    done = await harness.run(
        plan(
            task("good", write("good.txt", "good")),
            task("broken", broken),
            task("later", write("later.txt", "later"), "good"),
            retries=1,
        )
    )

    assert done.result.status == "failed"
    assert "broken" in (done.result.error or "")
    assert [(f["attempt"], f["will_retry"]) for f in of_type(done.events, "TaskFailed")] == [
        (1, True),
        (2, False),
    ]
    assert [b["batch_id"] for b in of_type(done.events, "BatchFailed")] == [1]
    assert [b["batch_id"] for b in of_type(done.events, "BatchStarted")] == [1]
    assert "later" not in {s["task_id"] for s in of_type(done.events, "TaskStarted")}
    assert types_of(done.events)[-1] == "RunFailed"

    # Each failed attempt's work is committed: at its kept ref, and the last on its branch.
    kept = of_type(done.events, "WorkKept")
    assert [(k["task_id"], k["attempt"]) for k in kept] == [("broken", 1), ("broken", 2)]
    for k in kept:
        assert file_on(harness.repo, k["ref"], "half-done.txt") == "work in progress"
    branch = kept[-1]["branch"]
    assert branch in plait_branches(harness.repo)
    assert file_on(harness.repo, branch, "half-done.txt") == "work in progress"
    last_worktree = Path(worktrees_of(done.events, "broken")[-1])
    assert (last_worktree / "half-done.txt").read_text() == "work in progress\n"

    # What did succeed in the failed batch landed on the run's branch, not on main.
    result = f"plait/{done.run_id}/_result"
    assert "good.txt" in files_on(harness.repo, result)
    assert "good.txt" not in files_on(harness.repo, "main")


@pytest.mark.parametrize("mode", WORKTREE_MODES)
async def test_a_successful_run_leaves_no_task_repository_or_plait_branch_behind(
    tmp_path: Path, mode: str
) -> None:
    async with open_harness(tmp_path, reuse_worktrees=mode == "pooled") as harness:
        await leaves_nothing_behind(harness, mode)


async def leaves_nothing_behind(harness: Harness, mode: str) -> None:
    marker = shlex.quote(str(harness.shared / "failed-once"))
    done = await harness.run(
        plan(
            task("red", "echo red >> src/app.txt"),
            task("blue", "echo blue >> src/app.txt"),  # one of them conflicts and re-runs
            task("retried", f"test -e {marker} || {{ touch {marker}; exit 1; }}", "red"),
            test_command="true",
            retries=1,
        )
    )

    assert done.result.status == "landed", done.result.error
    assert of_type(done.events, "MergeConflicted") != []
    [checkout, *left] = worktree_paths(harness.repo)
    assert checkout == harness.repo
    if mode == "fresh":
        assert left == []
    else:  # only the pool's idle slots stay, each detached: on no branch of the run's
        assert left != []
        assert all(slot.parent.name == POOL_DIR for slot in left)
        assert all(not (slot / ".git" / "HEAD").read_text().startswith("ref:") for slot in left)
    assert plait_branches(harness.repo) == []
    removed = {r["worktree_id"] for r in of_type(done.events, "WorktreeRemoved")}
    created = {c["worktree_id"] for c in of_type(done.events, "WorktreeCreated")}
    assert removed == created


async def test_a_failed_run_keeps_the_unlanded_work_and_the_run_branch(harness: Harness) -> None:
    base = branch_tip(harness.repo, "main")
    done = await harness.run(
        plan(
            task("landed", write("landed.txt", "yes")),
            task("unlanded", write("unlanded.txt", "mine") + " && false"),
        )
    )

    assert done.result.status == "failed"
    assert branch_tip(harness.repo, "main") == base
    branches = plait_branches(harness.repo)
    assert f"plait/{done.run_id}/unlanded" in branches
    assert f"plait/{done.run_id}/_result" in branches
    kept_path = Path(worktrees_of(done.events, "unlanded")[-1])
    assert (kept_path / "unlanded.txt").exists()
    assert file_on(harness.repo, f"plait/{done.run_id}/unlanded", "unlanded.txt") == "mine"
    assert git(harness.repo, "status", "--porcelain") == ""
