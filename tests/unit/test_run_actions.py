"""What a run does next, decided in the domain: skipped dependents, retries, skips, landing;
and the words it says about each task."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import pytest

from plait.domain.events import (
    BatchFailed,
    BatchLanded,
    RunCompleted,
    RunCreated,
    RunEvent,
    RunFailed,
    RunResumed,
    TaskFailed,
    TaskSkipped,
)
from plait.domain.run import RunState, replay, task_note
from plait.domain.run.decide import batch_has_work
from plait.domain.run_actions import (
    ActionRefused,
    check_landable,
    dependency_skips,
    land_skips,
    retry_events,
    skip_events,
)
from tests.unit.test_run_replay import (
    RUN,
    begin,
    complete_batch,
    launch,
    merge,
    passing_tests,
    run_task,
    start_batch,
    wt,
)


def with_deps(events: list[RunEvent], deps: dict[str, list[str]]) -> list[RunEvent]:
    """The same history with `depends_on` in its RunCreated plan."""
    created = events[0]
    assert isinstance(created, RunCreated)
    plan = {
        "test_command": "pytest -q",
        "tasks": [{"id": t, "depends_on": d} for t, d in deps.items()],
    }
    return [dataclasses.replace(created, plan=plan), *events[1:]]


def failed_in_batch_one() -> RunState:
    """a lands, b fails (stop): the run fails after batch 1; c (needs b) and d never ran."""
    events: list[RunEvent] = [
        *begin(["a", "b"], ["c", "d"]),
        start_batch(1, "a", "b"),
        *run_task(1, "a"),
        *launch(1, "b"),
        TaskFailed(
            run_id=RUN, batch_id=1, task_id="b", worktree_id=wt("b"), attempt=1,
            exit_code=3, error="command failed (exit status 3):\nstep 1\nboom: no network",
        ),
        *merge(1, "a"),
        passing_tests(1, "m-a"),
        BatchLanded(run_id=RUN, batch_id=1, before="c0", after="m-a"),
        BatchFailed(run_id=RUN, batch_id=1, merge_status="task_failed", errors=["b failed"]),
        RunFailed(run_id=RUN, error="task 'b' failed; the run stopped after batch 1"),
    ]  # fmt: skip
    return replay(with_deps(events, {"a": [], "b": [], "c": ["b"], "d": ["a"]}))


def test_a_run_that_failed_with_tested_work_is_landable_and_says_so() -> None:
    state = failed_in_batch_one()
    assert (state.status, state.result_commit, state.landed_commit) == ("failed", "m-a", None)
    assert state.landable
    view = state.status_view()
    assert view["land_command"] == f"plait land {RUN}"
    assert view["result_branch"] == f"plait/{RUN}/_result"
    assert view["completed_batches"] == 1  # its green work landed, though a task failed
    check_landable(state)


def test_every_task_says_why_it_is_in_its_status() -> None:
    state = failed_in_batch_one()
    notes = {t.task_id: task_note(state, t) for t in state.tasks.values()}
    assert notes["a"] == f"on plait/{RUN}/_result, tested"
    assert notes["b"] == "command failed (exit status 3): … boom: no network"
    assert notes["c"].startswith("not started: the run failed (task 'b' failed")
    assert notes["d"].startswith("not started: the run failed")


def test_skipping_a_failed_task_skips_it_and_later_its_dependents_with_the_reason() -> None:
    state = failed_in_batch_one()
    skips = skip_events(state, "b")
    assert [(s.task_id, s.reason) for s in skips] == [("b", "skipped by a user")]

    state.apply(RunResumed(run_id=RUN, reason="skipped"))
    for skip in skips:
        state.apply(skip)
    assert batch_has_work(state, 1)  # failed: it runs again, if only to complete
    assert [(s.task_id, s.reason) for s in dependency_skips(state, 2)] == [
        ("c", "depends on 'b', which was skipped")
    ]


def test_retrying_a_task_queues_it_and_the_tasks_skipped_because_of_it() -> None:
    state = failed_in_batch_one()
    state.apply(RunResumed(run_id=RUN, reason="go on"))
    state.apply(TaskSkipped(run_id=RUN, task_id="c", reason="depends on 'b', which failed"))
    requeued = retry_events(state, "b")
    assert [(e.task_id, e.reason) for e in requeued] == [
        ("b", "retried by a user"),
        ("c", "its dependency 'b' is retried"),
    ]
    for event in requeued:
        state.apply(event)
    assert (state.tasks["b"].status, state.tasks["c"].status) == ("pending", "pending")


@pytest.mark.parametrize(
    ("action", "task_id", "message"),
    [
        (retry_events, "a", "task 'a' is landed: only a task that did not land can be retried"),
        (skip_events, "a", "task 'a' is landed: there is nothing to skip"),
        (retry_events, "zz", "has no task 'zz' (its tasks: a, b, c, d)"),
    ],
)
def test_a_retry_or_skip_the_state_does_not_allow_is_refused_in_words(
    action: Callable[[RunState, str], Sequence[RunEvent]], task_id: str, message: str
) -> None:
    with pytest.raises(ActionRefused) as refused:
        action(failed_in_batch_one(), task_id)
    assert message in str(refused.value)


def test_landing_skips_what_never_ran() -> None:
    state = failed_in_batch_one()
    assert [(s.task_id, s.reason) for s in land_skips(state)] == [
        ("c", "not run: the run was landed without it"),
        ("d", "not run: the run was landed without it"),
    ]


def test_a_landed_run_has_nothing_to_land() -> None:
    state = replay(
        [
            *begin(["a"]),
            start_batch(1, "a"),
            *run_task(1, "a"),
            *merge(1, "a"),
            passing_tests(1, "m-a"),
            BatchLanded(run_id=RUN, batch_id=1, before="c0", after="m-a"),
            complete_batch(1),
            RunCompleted(run_id=RUN, landed_commit="m-a", landed_on="main"),
        ]
    )
    assert (state.status, state.landed_commit) == ("landed", "m-a")
    assert not batch_has_work(state, 1)
    with pytest.raises(ActionRefused, match="is landed: there is nothing to land"):
        check_landable(state)


def test_a_result_kept_on_the_run_branch_is_kept_not_landed() -> None:
    state = replay(
        [
            *begin(["a"]),
            start_batch(1, "a"),
            *run_task(1, "a"),
            *merge(1, "a"),
            BatchLanded(run_id=RUN, batch_id=1, before="c0", after="m-a"),
            complete_batch(1),
            RunCompleted(
                run_id=RUN,
                landed_commit="m-a",
                landed_on=f"plait/{RUN}/_result",
                not_landed_reason="your main checkout has local changes",
            ),
        ]
    )
    assert (state.status, state.landed_commit, state.landed_on) == ("kept", None, None)
    assert (state.result_commit, state.landable) == ("m-a", True)
    assert state.not_landed_reason == "your main checkout has local changes"


def test_a_run_whose_base_already_had_the_result_succeeded_without_landing() -> None:
    state = replay([*begin(["a"]), RunCompleted(run_id=RUN, landed_commit="c0", landed_on="main")])
    assert (state.status, state.landed_commit) == ("succeeded", None)


def test_only_a_run_whose_base_moved_says_landed() -> None:
    failed = failed_in_batch_one()
    assert failed.outcome().startswith("Failed: task 'b' failed")
    assert "Landed" not in failed.outcome()
    assert failed.landable_note() == (
        f"The tested work of 1 task(s) is on plait/{RUN}/_result; main did not move."
    )
    running = replay([*begin(["a"]), start_batch(1, "a")])
    assert running.outcome() == "Running: nothing has landed on main yet."
    assert running.landable_note() == ""
    landed = replay(
        [
            *begin(["a"]),
            start_batch(1, "a"),
            *run_task(1, "a"),
            *merge(1, "a"),
            BatchLanded(run_id=RUN, batch_id=1, before="c0", after="m-a"),
            complete_batch(1),
            RunCompleted(run_id=RUN, landed_commit="m-a", landed_on="main"),
        ]
    )
    assert landed.outcome() == "Landed m-a on main."
    assert (landed.status_view()["outcome"], landed.status_view()["landable_note"]) == (
        "Landed m-a on main.",
        "",
    )
