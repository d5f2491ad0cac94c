"""`schedule: ready`: a task starts as soon as its dependencies landed, with no batch barrier;
finished tasks merge in rounds that take everything queued at once, and culprits, conflicts,
failures and stops behave as in batch mode."""

from __future__ import annotations

import shlex
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from plait.domain.ids import result_branch
from plait.domain.run import replay
from plait.eventstore import StoredEvent
from plait.projections.codec import decode
from tests.integration.orchestration_helpers import (
    Harness,
    file_on,
    files_on,
    first_index,
    most_running_at_once,
    of_type,
    open_harness,
    plan,
    task,
    wait_until,
    write,
)


@pytest.fixture(params=["fresh", "pooled"])
async def harness(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Harness]:
    """Each test with fresh worktrees and with pooled ones: a ready run provisions while
    its rounds give worktrees back."""
    async with open_harness(tmp_path, reuse_worktrees=request.param == "pooled") as opened:
        yield opened


def ready(*tasks: dict[str, object], **settings: object) -> dict[str, object]:
    return plan(*tasks, schedule="ready", **settings)


def succeeded(task_id: str) -> Callable[[StoredEvent], bool]:
    return lambda e: e.type == "TaskSucceeded" and e.data["task_id"] == task_id


def marker(harness: Harness, name: str) -> str:
    return shlex.quote(str(harness.shared / name))


async def test_a_dependent_starts_while_an_unrelated_task_of_the_same_level_still_runs(
    harness: Harness,
) -> None:
    # `slow` cannot finish until `after_quick` has started: under batch barriers it would
    # wait for a task that waits for it, and give up.
    slow = task(
        "slow",
        wait_until(f"[ -e {marker(harness, 'after-started')} ]") + "; " + write("slow.txt", "s"),
    )
    quick = task("quick", write("quick.txt", "q"))
    after = task(
        "after_quick",
        f"test -f quick.txt && touch {marker(harness, 'after-started')} && "
        + write("after.txt", "a"),
        "quick",
    )
    done = await harness.run(ready(slow, quick, after, max_concurrency=3))

    assert done.result.status == "landed", done.result.error
    assert {"slow.txt", "quick.txt", "after.txt"} <= files_on(harness.repo, "main")
    assert first_index(done.events, "TaskStarted", task_id="after_quick") < first_index(
        done.events, "TaskSucceeded", task_id="slow"
    )


async def test_the_events_say_the_run_was_scheduled_ready_and_merged_in_rounds(
    harness: Harness,
) -> None:
    done = await harness.run(
        ready(task("a", write("a.txt", "a")), task("b", write("b.txt", "b"), "a"))
    )

    assert done.result.status == "landed", done.result.error
    selected = of_type(done.events, "ExecutionModeSelected")[0]
    assert selected["schedule"] == "ready"
    assert selected["reason"].startswith("schedule ready")
    # A task runs in the ready queue (batch 0) and lands in the round that took it in.
    started = {d["task_id"]: d["batch_id"] for d in of_type(done.events, "TaskStarted")}
    assert started == {"a": 0, "b": 0}
    rounds = [d["task_ids"] for d in of_type(done.events, "BatchStarted")]
    assert rounds == [["a"], ["b"]]
    state = replay(decode(e) for e in done.events)
    assert state.schedule == "ready"
    assert {t.batch_id for t in state.tasks.values()} == {1, 2}
    assert {b.status for b in state.batches.values()} == {"completed"}


async def test_a_round_takes_every_task_that_finished_while_the_last_round_was_tested(
    harness: Harness,
) -> None:
    # `b` and `c` finish only once the first round is being tested, and that test waits
    # until both have finished: the next round must take both at once.
    landing, release = marker(harness, "first-testing"), marker(harness, "release")
    hold = wait_until(f"[ -e {release} ]")
    tests = f"if [ -e first.txt ] && [ ! -e b.txt ]; then touch {landing}; {hold}; fi"
    after_first = wait_until(f"[ -e {landing} ]") + "; "
    tasks = [
        task("first", write("first.txt", "1")),
        task("b", after_first + write("b.txt", "b")),
        task("c", after_first + write("c.txt", "c")),
    ]
    run_id = await harness.start(ready(*tasks, max_concurrency=3, test_command=tests))
    for finished in ("b", "c"):
        await harness.wait_for_event(run_id, succeeded(finished))
    (harness.shared / "release").touch()
    done = await harness.finish(run_id)

    assert done.result.status == "landed", done.result.error
    rounds = [sorted(d["task_ids"]) for d in of_type(done.events, "BatchStarted")]
    assert rounds == [["first"], ["b", "c"]]
    # One test run judged both: the round's merge, not each branch on its own.
    tested = [d["batch_id"] for d in of_type(done.events, "TestsPassed")]
    assert tested.count(2) == 1


async def test_a_culprit_in_a_round_is_left_out_and_its_dependents_are_skipped(
    harness: Harness,
) -> None:
    both = f"[ -e {marker(harness, 'good-done')} ] && [ -e {marker(harness, 'bad-done')} ]"
    good = task("good", write("good.txt", "g") + f"; touch {marker(harness, 'good-done')}")
    bad = task("bad", write("broken.txt", "x") + f"; touch {marker(harness, 'bad-done')}")
    child = task("child", write("child.txt", "c"), "bad")
    # Both finish before the first round forms: the round merges both and bisects.
    gate = task("gate", wait_until(both) + "; " + write("gate.txt", "g"))
    done = await harness.run(
        ready(gate, good, bad, child, max_concurrency=3, on_task_failure="land",
              test_command="test ! -e broken.txt")
    )  # fmt: skip

    assert done.result.status == "landed", done.result.error
    assert of_type(done.events, "CulpritFound")[0]["task_id"] == "bad"
    skipped = {d["task_id"]: d["reason"] for d in of_type(done.events, "TaskSkipped")}
    assert skipped == {"child": "depends on 'bad', which broke the tests"}
    on_main = files_on(harness.repo, "main")
    assert {"good.txt", "gate.txt"} <= on_main
    assert not {"broken.txt", "child.txt"} & on_main


async def test_tasks_that_conflict_in_a_round_are_re_run_on_the_new_tip_and_both_land(
    harness: Harness,
) -> None:
    both = f"[ -e {marker(harness, 'one')} ] && [ -e {marker(harness, 'two')} ]"
    one = task(
        "one", f"echo one >> shared.txt; touch {marker(harness, 'one')}; " + wait_until(both)
    )
    two = task(
        "two", f"echo two >> shared.txt; touch {marker(harness, 'two')}; " + wait_until(both)
    )
    done = await harness.run(ready(one, two, max_concurrency=2))

    assert done.result.status == "landed", done.result.error
    assert of_type(done.events, "MergeConflicted")
    assert sorted(file_on(harness.repo, "main", "shared.txt").split()) == ["one", "two"]


async def test_tasks_declaring_the_same_files_never_run_side_by_side(harness: Harness) -> None:
    tasks = [task(t, write("same.txt", t) + "; sleep 0.2", files=["same.txt"]) for t in "xyz"]
    done = await harness.run(ready(*tasks, max_concurrency=3))

    assert done.result.status == "landed", done.result.error
    assert most_running_at_once(done.events) == 1
    assert of_type(done.events, "MergeConflicted") == []


async def test_a_failed_task_under_stop_lets_the_running_ones_land_then_fails_the_run(
    harness: Harness,
) -> None:
    failing = task("failing", f"touch {marker(harness, 'failed')}; exit 3")
    running = task(
        "running", wait_until(f"[ -e {marker(harness, 'failed')} ]") + "; " + write("r.txt", "r")
    )
    later = task("later", write("later.txt", "l"), "running")
    done = await harness.run(ready(failing, running, later, max_concurrency=2))

    assert done.result.status == "failed"
    assert "failing" in (done.result.error or "")
    # What was running when the task failed landed on the run's result branch.
    assert "r.txt" in files_on(harness.repo, result_branch(done.run_id))
    assert "r.txt" not in files_on(harness.repo, "main")
    assert "later" not in {d["task_id"] for d in of_type(done.events, "TaskStarted")}


async def test_a_stopped_ready_run_resumes_and_lands_every_task(harness: Harness) -> None:
    hold = marker(harness, "release")
    first = task("first", write("first.txt", "1"))
    held = task("held", wait_until(f"[ -e {hold} ]") + "; " + write("held.txt", "h"), "first")
    run_id = await harness.start(ready(first, held))
    await harness.wait_for_event(
        run_id, lambda e: e.type == "TaskStarted" and e.data["task_id"] == "held"
    )
    await harness.service.stop_run(await harness.project())
    stopped = await harness.finish(run_id)
    assert stopped.result.status == "stopped"

    Path(harness.shared / "release").touch()
    await harness.service.resume_run(await harness.project(), run_id)
    done = await harness.finish(run_id)

    assert done.result.status == "landed", done.result.error
    assert {"first.txt", "held.txt"} <= files_on(harness.repo, "main")


async def test_a_task_without_a_worktree_makes_the_run_fall_back_to_one_at_a_time(
    tmp_path: Path,
) -> None:
    # `blocker` takes the directory `b`'s first worktree would get while `b` becomes ready,
    # and gives it back only once the run fell back; `b` then runs alone and lands. (Fresh
    # worktrees: a pooled one's directory is a slot's, not the task's.)
    async with open_harness(tmp_path, reuse_worktrees=False) as harness:
        await falls_back_then_lands(harness)


async def falls_back_then_lands(harness: Harness) -> None:
    made, release = marker(harness, "blocked"), marker(harness, "release")
    spot = '"$(dirname "$PLAIT_WORKTREE")/b.1"'
    blocker = task(
        "blocker",
        f"mkdir -p {spot} && touch {spot}/taken && touch {made}; "
        + wait_until(f"[ -e {release} ]")
        + f"; rm -r {spot}; "
        + write("blocker.txt", "x"),
    )
    first = task("first", wait_until(f"[ -e {made} ]") + "; " + write("first.txt", "1"))
    b = task("b", write("b.txt", "b"), "first")
    run_id = await harness.start(ready(blocker, first, b, max_concurrency=2))
    fell_back = await harness.wait_for_event(run_id, lambda e: e.type == "FellBackToSequential")
    (harness.shared / "release").touch()
    done = await harness.finish(run_id)

    assert done.result.status == "landed", done.result.error
    assert fell_back.data["batch_id"] is None
    assert "task 'b': worktree:" in fell_back.data["reason"]
    assert replay(decode(e) for e in done.events).mode == "sequential"
    assert {"blocker.txt", "first.txt", "b.txt"} <= files_on(harness.repo, "main")
    assert first_index(done.events, "TaskStarted", task_id="b") > first_index(
        done.events, "TaskSucceeded", task_id="blocker"
    )
