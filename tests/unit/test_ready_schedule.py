"""`schedule: ready` in the domain: the plan field, the expected length of both schedules,
which waiting task may start, which is skipped, what a resumed run does with its queue, and
the fold of a run whose batches are merge rounds."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pytest

from plait.domain.errors import InvalidTransition, PlanError
from plait.domain.events import RunCreated, RunEvent, TaskFailed, TaskRequeued
from plait.domain.plan.expected import expected
from plait.domain.plan.model import Schedule
from plait.domain.plan.parsing import parse_plan, plan_from_mapping
from plait.domain.run import RunState, replay
from plait.domain.run.entities import READY_QUEUE
from plait.domain.run.ready import (
    next_round,
    queue_skips,
    resume_queue,
    startable,
    stuck,
)
from tests.unit.test_run_replay import (
    RUN,
    begin,
    complete_batch,
    land,
    launch,
    merge,
    passing_tests,
    start_batch,
    succeed,
)

Q = READY_QUEUE


def ready_created(deps: Mapping[str, Sequence[str]]) -> RunCreated:
    return RunCreated(
        run_id=RUN,
        project_id="proj",
        plan={
            "schedule": "ready",
            "tasks": [{"id": t, "depends_on": list(d)} for t, d in deps.items()],
        },
        batches=[],
        base_branch="main",
        base_commit="c0",
        repo_path="/repo",
    )


def ready_run(deps: Mapping[str, Sequence[str]], *events: RunEvent) -> RunState:
    return replay([ready_created(deps), *begin()[1:], *events])


def failed(task_id: str) -> TaskFailed:
    return TaskFailed(
        run_id=RUN, batch_id=Q, task_id=task_id, worktree_id=f"wt-{task_id}-1", attempt=1,
        exit_code=1, error="exited 1",
    )  # fmt: skip


def round_lands(batch_id: int, *task_ids: str, before: str, after: str) -> list[RunEvent]:
    return [
        start_batch(batch_id, *task_ids),
        *merge(batch_id, *task_ids, onto=before),
        passing_tests(batch_id, after),
        *land(batch_id, before, after),
        complete_batch(batch_id),
    ]


# --- the plan -------------------------------------------------------------------------------


def test_the_schedule_is_batch_unless_the_plan_says_ready() -> None:
    assert parse_plan("tasks: [{id: a, run: x}]").schedule is Schedule.BATCH
    assert parse_plan("schedule: ready\ntasks: [{id: a, run: x}]").schedule is Schedule.READY


def test_a_plan_round_trips_its_schedule_and_estimates() -> None:
    plan = parse_plan("schedule: ready\ntasks: [{id: a, run: x, estimate: 2.5}]")
    again = plan_from_mapping(plan.to_dict())
    assert again == plan
    assert again.tasks[0].estimate == 2.5


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("schedule: eager\ntasks: [{id: a, run: x}]", "'schedule' must be 'batch' or 'ready'"),
        (
            "schedule: ready\nbatches: [{batch_id: 1, task_ids: [a]}]\ntasks: [{id: a, run: x}]",
            "'batches' need 'schedule: batch'",
        ),
        ("tasks: [{id: a, run: x, estimate: -1}]", "'estimate' must be more than 0"),
    ],
)
def test_a_bad_schedule_or_estimate_is_refused_with_its_name(text: str, problem: str) -> None:
    with pytest.raises(PlanError) as refused:
        parse_plan(text)
    assert any(problem in p for p in refused.value.problems), refused.value.problems


# --- what each schedule is expected to take ------------------------------------------------

DAG = """
max_concurrency: 6
tasks:
  - {id: a, run: x, estimate: 1}
  - {id: b, run: x, estimate: 6}
  - {id: c, run: x, estimate: 2}
  - {id: d, run: x, estimate: 5, depends_on: [a]}
  - {id: e, run: x, estimate: 1, depends_on: [c]}
  - {id: f, run: x, estimate: 4, depends_on: [d]}
"""


def test_the_ready_schedule_is_expected_to_take_its_critical_path_and_batches_their_maxima() -> (
    None
):
    paths = expected(parse_plan(DAG))
    assert paths.unit == "s"
    assert paths.critical_path == ("a", "d", "f")
    assert paths.critical_length == 10
    assert paths.ready == 10  # a -> d -> f, with room for everything else beside it
    assert paths.batch == 6 + 5 + 4  # each level waits for its longest task


def test_max_concurrency_lengthens_both_expected_schedules() -> None:
    paths = expected(parse_plan(DAG.replace("max_concurrency: 6", "max_concurrency: 1")))
    assert paths.ready == paths.batch == 1 + 6 + 2 + 5 + 1 + 4


def test_without_estimates_the_paths_are_counted_in_tasks() -> None:
    paths = expected(parse_plan(DAG.replace(", estimate: 6", "")))
    assert paths.unit == "tasks"
    assert paths.unestimated == ("b",)
    assert paths.critical_length == 3
    assert paths.batch == 3


# --- which waiting task may start ----------------------------------------------------------


def test_a_task_may_start_once_every_task_it_depends_on_has_landed() -> None:
    deps = {"a": [], "b": [], "c": ["a"], "d": ["a", "b"]}
    first = ready_run(deps)
    assert startable(first, {}, busy=()) == ["a", "b"]

    a_landed = ready_run(
        deps, *launch(Q, "a"), succeed(Q, "a"), *round_lands(1, "a", before="c0", after="c1")
    )
    assert startable(a_landed, {}, busy={"b"}) == ["c"]


def test_a_task_whose_files_overlap_a_busy_one_waits() -> None:
    state = ready_run({"x": [], "y": [], "z": []})
    files = {"x": ("src/",), "y": ("src/app.py",), "z": ("docs/",)}
    assert startable(state, files, busy={"x"}) == ["z"]
    assert startable(state, files, busy=()) == ["x", "z"]  # y would overlap x, which starts


def test_a_task_whose_dependency_did_not_land_is_skipped_with_the_reason() -> None:
    state = ready_run(
        {"a": [], "b": ["a"]},
        *launch(Q, "a"),
        failed("a"),
    )
    skips = queue_skips(state)
    assert [(s.task_id, s.reason, s.batch_id) for s in skips] == [
        ("b", "depends on 'a', which failed", Q)
    ]


# --- a resumed run's queue ------------------------------------------------------------------


def test_a_resumed_queue_carries_finished_tasks_and_runs_failed_ones_again() -> None:
    state = ready_run(
        {"done": [], "broke": [], "waiting": []},
        *launch(Q, "done"),
        succeed(Q, "done"),
        *launch(Q, "broke"),
        failed("broke"),
    )
    decided = resume_queue(state)
    assert decided.carried == ["done"]
    assert [(e.task_id, e.batch_id) for e in decided.requeued] == [("broke", Q)]
    assert isinstance(decided.requeued[0], TaskRequeued)


def test_nothing_is_stuck_once_every_task_settled() -> None:
    deps: dict[str, list[str]] = {"a": []}
    assert stuck(ready_run(deps)) == "tasks that could not start: a"
    landed = ready_run(
        deps, *launch(Q, "a"), succeed(Q, "a"), *round_lands(1, "a", before="c0", after="c1")
    )
    assert stuck(landed) is None


# --- the fold -------------------------------------------------------------------------------


def test_a_ready_run_has_no_batches_until_a_round_takes_its_tasks_in() -> None:
    state = ready_run({"a": [], "b": ["a"]})
    assert state.schedule == "ready"
    assert state.batches == {}
    assert {t.batch_id for t in state.tasks.values()} == {Q}
    assert next_round(state) == 1


def test_a_merge_round_takes_its_tasks_out_of_the_queue_and_lands_them() -> None:
    state = ready_run(
        {"a": [], "b": []},
        *launch(Q, "a"),
        succeed(Q, "a"),
        *launch(Q, "b"),
        succeed(Q, "b"),
        *round_lands(1, "a", "b", before="c0", after="c2"),
    )
    assert {t.task_id: (t.batch_id, t.status) for t in state.tasks.values()} == {
        "a": (1, "landed"),
        "b": (1, "landed"),
    }
    assert state.batches[1].status == "completed"
    assert state.result_commit == "c2"
    assert next_round(state) == 2


def test_a_batch_run_has_no_ready_queue() -> None:
    # Batch 0 is only a `schedule: ready` run's queue: elsewhere it is no batch at all.
    with pytest.raises(InvalidTransition):
        replay([*begin(["a"]), *launch(Q, "a")])
