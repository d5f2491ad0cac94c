"""Runs that used to be stuck for good: each one now resumes (or retries) to its end."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.integration.orchestration_helpers import (
    Harness,
    file_on,
    merged_count,
    of_type,
    open_harness,
    plait_branches,
    plan,
    task,
    write,
)


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    async with open_harness(tmp_path) as opened:
        yield opened


def deletes_its_own_branch_the_first_time(shared: Path) -> str:
    """Deletes the branch its worktree has checked out (HEAD becomes unborn), once."""
    marker = shared / "deleted-once"
    return (
        f"if [ ! -e {marker} ]; then touch {marker}; "
        'git update-ref -d "$(git symbolic-ref HEAD)"; fi; '
        "echo gone > gone.txt"
    )


async def test_a_task_whose_branch_was_deleted_mid_run_lands_on_resume(
    harness: Harness,
) -> None:
    the_plan = plan(
        task("gone", deletes_its_own_branch_the_first_time(harness.shared)),
        task("other", write("other.txt", "other")),
    )
    first = await harness.run(the_plan)

    done = first
    if first.result.status != "landed":
        # Its commit would be a root commit (HEAD was unborn): a failure of the task, which
        # a resume runs again; never the merge refusing unrelated histories on every resume.
        assert first.result.status == "failed"
        assert "unrelated histories" not in (first.result.error or "")
        [failure] = of_type(first.events, "TaskFailed")
        assert failure["task_id"] == "gone"
        assert "does not descend from its base" in failure["error"]
        project_id = await harness.project()
        assert await harness.service.resume_run(project_id, first.run_id) == first.run_id
        done = await harness.finish(first.run_id)

    assert done.result.status == "landed", done.result.error
    assert merged_count(done.events) == {"gone": 1, "other": 1}
    assert file_on(harness.repo, "main", "gone.txt") == "gone"
    assert plait_branches(harness.repo) == []


def fails_and_blocks_its_retry(shared: Path) -> str:
    """Fails once, leaving a file where the retry's worktree would go."""
    marker = shared / "failed-once"
    return (
        f"if [ ! -e {marker} ]; then touch {marker}; "
        'touch "$(dirname "$PWD")/blocked.2"; exit 1; fi; '
        "echo ok > blocked.txt"
    )


@pytest.fixture
async def fresh_harness(tmp_path: Path) -> AsyncIterator[Harness]:
    """Fresh task repositories: an attempt's directory is its own (`<task>.<attempt>`), so a
    test can take it beforehand; a pooled attempt's is a slot's."""
    async with open_harness(tmp_path, reuse_worktrees=False) as opened:
        yield opened


@pytest.mark.parametrize("on_task_failure", ["stop", "land"])
async def test_a_retry_that_gets_no_worktree_fails_the_run_resumably(
    fresh_harness: Harness, on_task_failure: str
) -> None:
    harness = fresh_harness
    the_plan = plan(
        task("blocked", fails_and_blocks_its_retry(harness.shared)),
        task("other", write("other.txt", "other")),
        retries=1,
        on_task_failure=on_task_failure,
    )
    first = await harness.run(the_plan)

    # Not a finished run with the task waiting for a retry that never came.
    assert first.result.status == "failed"
    assert "blocked" in (first.result.error or "")
    state = harness.service.run_state(first.run_id)
    assert state is not None
    assert state.tasks["blocked"].status != "landed"
    assert of_type(first.events, "RunCompleted") == []

    [created] = [c for c in of_type(first.events, "WorktreeCreated") if c["task_id"] == "blocked"]
    # The user fixed what stopped the worktree.
    (Path(created["path"]).parent / "blocked.2").unlink()
    project_id = await harness.project()
    assert await harness.service.resume_run(project_id, first.run_id) == first.run_id
    resumed = await harness.finish(first.run_id)

    assert resumed.result.status == "landed", resumed.result.error
    assert merged_count(resumed.events) == {"blocked": 1, "other": 1}
    assert file_on(harness.repo, "main", "blocked.txt") == "ok"
