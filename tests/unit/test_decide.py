"""The domain decides what execution records: a crash's recovery, a resumed batch, a
batch's end and the run's end, from the state and what happened."""

from __future__ import annotations

from plait.domain.events import (
    BatchCompleted,
    BatchFailed,
    RunResumed,
    RunStopped,
    StopRequested,
    TaskFailed,
    TaskInterrupted,
    TaskRequeued,
)
from plait.domain.run import RunState, replay
from plait.domain.run.decide import (
    batch_end,
    nothing_landed,
    recovery,
    resume_batch,
    run_completed,
)
from tests.unit.test_run_replay import RUN, begin, land, launch, merge, start_batch, succeed


def mid_batch() -> RunState:
    """Batch 1 of a, b, c: a finished, b running, c failed."""
    return replay(
        [
            *begin(["a", "b", "c"]),
            start_batch(1, "a", "b", "c"),
            *launch(1, "a"),
            succeed(1, "a"),
            *launch(1, "b"),
            *launch(1, "c"),
            TaskFailed(
                run_id=RUN, batch_id=1, task_id="c", worktree_id="wt-c-1", attempt=1,
                exit_code=1, error="boom",
            ),
        ]
    )  # fmt: skip


def test_a_crash_found_on_recovery_interrupts_the_running_tasks_and_resumes() -> None:
    decided = recovery(mid_batch())
    assert decided.launch
    [interrupted, resumed] = decided.events
    assert isinstance(interrupted, TaskInterrupted)
    assert interrupted.task_id == "b"
    assert isinstance(resumed, RunResumed)


def test_a_crash_after_a_stop_was_asked_for_finishes_the_stop() -> None:
    state = mid_batch().apply(StopRequested(run_id=RUN, reason="enough"))
    decided = recovery(state)
    assert not decided.launch
    assert [type(e) for e in decided.events] == [TaskInterrupted, RunStopped]
    assert decided.events[-1] == RunStopped(run_id=RUN, reason="enough")


def test_a_resumed_batch_carries_what_finished_and_requeues_what_failed() -> None:
    state = mid_batch()
    for event in recovery(state).events:
        state.apply(event)
    decided = resume_batch(state, 1)
    assert decided.carried == ["a"]
    assert decided.to_run == ["b", "c"]
    assert [(r.task_id, r.reason) for r in decided.requeued] == [("c", "the run was resumed")]
    assert all(isinstance(r, TaskRequeued) for r in decided.requeued)


def test_a_failed_task_fails_its_batch_under_stop_and_not_under_land() -> None:
    state = mid_batch()
    stopped = batch_end(state, 1, {"c": "boom"}, [], 1.0)
    assert isinstance(stopped, BatchFailed)
    assert (stopped.merge_status, list(stopped.errors)) == ("task_failed", ["task 'c': boom"])
    state.on_task_failure = "land"
    landed = batch_end(state, 1, {"c": "boom"}, [], 1.0)
    assert isinstance(landed, BatchCompleted)
    assert landed.merge_status == "partial"


def test_a_task_that_got_no_worktree_fails_its_batch_whatever_the_policy() -> None:
    state = mid_batch()
    state.on_task_failure = "land"
    end = batch_end(state, 1, {"b": "no worktree for the retry: disk full"}, ["b"], 1.0)
    assert isinstance(end, BatchFailed)


def test_a_batch_with_nothing_left_out_completes_with_success() -> None:
    end = batch_end(mid_batch(), 1, {}, [], 2.5)
    assert end == BatchCompleted(run_id=RUN, batch_id=1, merge_status="success", duration=2.5)


def test_a_run_whose_result_is_still_the_base_with_a_task_not_landed_failed() -> None:
    state = mid_batch()
    assert nothing_landed(state, "c0") == "nothing landed: task 'c' failed"
    assert nothing_landed(state, "m-a") is None  # something landed: the run goes on to land
    settled = replay([*begin(["a"]), start_batch(1, "a")])
    assert nothing_landed(settled, "c0") is None  # no task failed: the base has it all


def test_a_landed_result_completes_the_run_on_the_base_or_keeps_it_with_the_reason() -> None:
    state = replay([*begin(["a"]), start_batch(1, "a"), *launch(1, "a"), succeed(1, "a"),
                    *merge(1, "a"), *land(1, "c0", "m-a")])  # fmt: skip
    on_base = run_completed(state, "m-a", "main", "")
    assert (on_base.landed_on, on_base.land_command, on_base.not_landed_reason) == (
        "main",
        None,
        "",
    )
    kept = run_completed(state, "m-a", f"plait/{RUN}/_result", "your main checkout is dirty")
    assert kept.land_command == f"plait land {RUN}"
    assert kept.not_landed_reason == "your main checkout is dirty"
