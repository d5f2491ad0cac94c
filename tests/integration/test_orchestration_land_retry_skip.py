"""Landing the green work: `on_task_failure`, the skipped dependents of a task that did not
land, and a user's `land`, `retry` and `skip` of a stopped or failed run, on real
repositories through the real service."""

from __future__ import annotations

import shlex
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from plait.execution.service import NotResumable
from tests.integration.orchestration_helpers import (
    WORKTREE_MODES,
    Harness,
    branch_tip,
    files_on,
    of_type,
    open_harness,
    plan,
    task,
    write,
)


@pytest.fixture(params=WORKTREE_MODES)
async def harness(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Harness]:
    """Each test with fresh task repositories and with pooled ones: the same promises."""
    async with open_harness(tmp_path, reuse_worktrees=request.param == "pooled") as opened:
        yield opened


def statuses(harness: Harness, run_id: str) -> dict[str, str]:
    view = harness.service.read.run_status(run_id)
    assert view is not None
    return {t["task_id"]: t["status"] for t in view["tasks"]}


def skipped(events: Any) -> dict[str, str]:
    return {s["task_id"]: s["reason"] for s in of_type(events, "TaskSkipped")}


def four_tasks(**settings: Any) -> dict[str, Any]:
    """good and broken side by side; later needs good, needy needs broken."""
    return plan(
        task("good", write("good.txt", "good")),
        task("broken", write("half.txt", "half") + " && echo 'no network' >&2 && exit 3"),
        task("later", write("later.txt", "later"), "good"),
        task("needy", write("needy.txt", "needy"), "broken"),
        **settings,
    )


async def test_with_land_a_failed_task_skips_its_dependents_and_the_rest_lands(
    harness: Harness,
) -> None:
    done = await harness.run(four_tasks(on_task_failure="land"))

    assert done.result.status == "landed", done.result.error
    assert {"good.txt", "later.txt"} <= files_on(harness.repo, "main")
    assert not {"half.txt", "needy.txt"} & files_on(harness.repo, "main")
    assert skipped(done.events) == {"needy": "depends on 'broken', which failed"}
    await harness.service.wait_until_projected()
    assert statuses(harness, done.run_id) == {
        "good": "landed",
        "broken": "failed",
        "later": "landed",
        "needy": "skipped",
    }
    # The failed task's work is kept, uncommitted, in its worktree on its branch.
    [kept] = of_type(done.events, "WorkKept")
    assert (kept["task_id"], kept["branch"]) == ("broken", f"plait/{done.run_id}/broken")
    [worktree] = [
        w["path"] for w in of_type(done.events, "WorktreeCreated") if w["task_id"] == "broken"
    ]
    assert (Path(worktree) / "half.txt").exists()


async def test_with_stop_a_failed_task_ends_the_run_with_its_batchs_green_work_tested(
    harness: Harness,
) -> None:
    base = branch_tip(harness.repo, "main")
    done = await harness.run(four_tasks())

    assert done.result.status == "failed"
    assert "(on_task_failure: stop)" in (done.result.error or "")
    assert branch_tip(harness.repo, "main") == base  # main never moved
    result = f"plait/{done.run_id}/_result"
    assert "good.txt" in files_on(harness.repo, result)
    await harness.service.wait_until_projected()
    view = harness.service.read.run_status(done.run_id)
    assert view is not None
    assert (view["landed_commit"], view["landable"]) == (None, True)
    assert view["result_commit"] == branch_tip(harness.repo, result)
    assert view["land_command"] == f"plait land {done.run_id}"
    notes = {t["task_id"]: t["note"] for t in view["tasks"]}
    assert notes["later"].startswith("not started: the run failed (task 'broken'")


async def test_landing_a_failed_run_moves_the_base_to_its_tested_result(
    harness: Harness,
) -> None:
    failed = await harness.run(four_tasks())
    result = branch_tip(harness.repo, f"plait/{failed.run_id}/_result")

    landed = await harness.finish(await harness.service.land_run(failed.run_id))

    assert landed.result.status == "landed", landed.result.error
    assert branch_tip(harness.repo, "main") == result
    assert "good.txt" in files_on(harness.repo, "main")
    assert skipped(landed.events) == {
        "later": "not run: the run was landed without it",
        "needy": "not run: the run was landed without it",
    }
    # Landing ran no task.
    assert len(of_type(landed.events, "TaskStarted")) == len(of_type(failed.events, "TaskStarted"))
    with pytest.raises(NotResumable, match="is landed: only a stopped, failed or kept run"):
        await harness.service.land_run(failed.run_id)


async def test_skipping_the_failed_task_goes_on_without_it_and_its_dependents(
    harness: Harness,
) -> None:
    failed = await harness.run(four_tasks())

    done = await harness.finish(await harness.service.skip_task(failed.run_id, "broken"))

    assert done.result.status == "landed", done.result.error
    assert {"good.txt", "later.txt"} <= files_on(harness.repo, "main")
    assert skipped(done.events) == {
        "broken": "skipped by a user",
        "needy": "depends on 'broken', which was skipped",
    }


async def test_retrying_a_failed_task_runs_it_again_and_the_run_lands_everything(
    harness: Harness,
) -> None:
    marker = shlex.quote(str(harness.shared / "network-is-back"))
    flaky = f"test -e {marker} && " + write("flaky.txt", "ok")
    failed = await harness.run(
        plan(
            task("good", write("good.txt", "good")),
            task("flaky", flaky),
            task("needy", write("needy.txt", "needy"), "flaky"),
        )
    )
    assert failed.result.status == "failed"
    (harness.shared / "network-is-back").touch()

    done = await harness.finish(await harness.service.retry_task(failed.run_id, "flaky"))

    assert done.result.status == "landed", done.result.error
    assert {"good.txt", "flaky.txt", "needy.txt"} <= files_on(harness.repo, "main")
    requeued = of_type(done.events, "TaskRequeued")
    assert ("flaky", "retried by a user") in {(r["task_id"], r["reason"]) for r in requeued}
    attempts = [
        s["attempt"] for s in of_type(done.events, "TaskStarted") if s["task_id"] == "flaky"
    ]
    assert attempts == [1, 2]  # two attempts, two logs, kept apart


async def test_a_dependent_of_a_culprit_is_skipped_and_the_run_goes_on(harness: Harness) -> None:
    done = await harness.run(
        plan(
            task("good", write("good.txt", "good")),
            task("culprit", write("BROKEN", "x")),
            task("on-culprit", write("c.txt", "c"), "culprit"),
            task("on-good", write("g.txt", "g"), "good"),
            test_command="test ! -e BROKEN",
        )
    )

    assert done.result.status == "landed", done.result.error
    assert skipped(done.events) == {"on-culprit": "depends on 'culprit', which broke the tests"}
    assert {"good.txt", "g.txt"} <= files_on(harness.repo, "main")


async def test_a_landed_run_cannot_be_retried_or_skipped(harness: Harness) -> None:
    done = await harness.run(plan(task("a", write("a.txt", "a"))))
    assert done.result.status == "landed"
    refusal = "is landed: only a stopped, failed or interrupted run can continue"
    with pytest.raises(NotResumable, match=refusal):
        await harness.service.retry_task(done.run_id, "a")
    with pytest.raises(NotResumable, match=refusal):
        await harness.service.skip_task(done.run_id, "a")


async def test_retrying_a_task_that_landed_is_refused_in_words(harness: Harness) -> None:
    failed = await harness.run(four_tasks())
    with pytest.raises(NotResumable, match="task 'good' is landed: only a task that did not land"):
        await harness.service.retry_task(failed.run_id, "good")
    with pytest.raises(NotResumable, match="has no task 'nope'"):
        await harness.service.skip_task(failed.run_id, "nope")
