"""Batches from dependencies and file hints, and the parallel/sequential decision."""

from __future__ import annotations

import pytest

from plait.domain.errors import PlanError
from plait.domain.plan.batching import ModeDecision, plan_batches, select_mode
from plait.domain.plan.model import Batch, Plan, Task
from plait.domain.plan.parsing import parse_plan


def task(task_id: str, *depends_on: str, files: tuple[str, ...] = ()) -> Task:
    return Task(id=task_id, run="true", depends_on=depends_on, files=files)


def batches_of(*tasks: Task) -> list[tuple[str, ...]]:
    return [batch.task_ids for batch in plan_batches(Plan(tasks=tasks))]


def test_a_chain_runs_one_task_per_batch_in_dependency_order() -> None:
    assert batches_of(task("c", "b"), task("b", "a"), task("a")) == [("a",), ("b",), ("c",)]


def test_a_diamond_runs_its_middle_in_parallel() -> None:
    tasks = (task("top"), task("left", "top"), task("right", "top"), task("end", "left", "right"))

    assert plan_batches(Plan(tasks=tasks)) == (
        Batch(1, ("top",), False),
        Batch(2, ("left", "right"), True),
        Batch(3, ("end",), False),
    )


def test_a_wide_fan_out_runs_every_leaf_in_one_batch() -> None:
    leaves = [task(f"leaf-{n:02}", "root") for n in range(20)]

    assert batches_of(task("root"), *leaves) == [("root",), tuple(t.id for t in leaves)]


def test_tasks_keep_plan_order_within_a_batch() -> None:
    assert batches_of(task("zeta"), task("alpha"), task("mid")) == [("zeta", "alpha", "mid")]


def test_a_task_waits_for_its_slowest_dependency() -> None:
    tasks = (task("a"), task("b", "a"), task("c", "b"), task("d", "a", "c"))

    assert batches_of(*tasks) == [("a",), ("b",), ("c",), ("d",)]


def test_batch_ids_count_from_one_and_a_lone_task_is_not_parallel() -> None:
    batches = plan_batches(Plan(tasks=(task("a"), task("b", "a"))))

    assert [(b.batch_id, b.can_parallel) for b in batches] == [(1, False), (2, False)]


def test_tasks_sharing_a_file_never_share_a_batch() -> None:
    tasks = (task("a", files=("src/x.py",)), task("b", files=("src/x.py",)), task("c"))

    assert batches_of(*tasks) == [("a", "c"), ("b",)]


def test_a_directory_overlaps_the_files_inside_it() -> None:
    tasks = (task("a", files=("src/",)), task("b", files=("src/pkg/mod.py",)))

    assert batches_of(*tasks) == [("a",), ("b",)]


def test_a_directory_without_a_trailing_slash_still_overlaps() -> None:
    tasks = (task("a", files=("src",)), task("b", files=("./src/mod.py",)))

    assert batches_of(*tasks) == [("a",), ("b",)]


def test_a_shared_name_prefix_is_not_an_overlap() -> None:
    tasks = (task("a", files=("src/a.py",)), task("b", files=("src/a.pyc", "src/ab/")))

    assert batches_of(*tasks) == [("a", "b")]


def test_the_whole_repository_overlaps_everything() -> None:
    tasks = (task("a", files=(".",)), task("b", files=("docs/x.md",)), task("c"))

    assert batches_of(*tasks) == [("a", "c"), ("b",)]


def test_overlap_splitting_is_greedy_into_the_first_batch_that_fits() -> None:
    tasks = (
        task("a", files=("x",)),
        task("b", files=("x",)),
        task("c", files=("y",)),
        task("d", files=("x", "y")),
        task("e", files=("y",)),
    )

    assert batches_of(*tasks) == [("a", "c"), ("b", "e"), ("d",)]


def test_overlap_splits_only_the_level_it_occurs_in() -> None:
    tasks = (
        task("a", files=("f",)),
        task("b", files=("f",)),
        task("c", "a", "b"),
        task("d", "a"),
    )

    assert batches_of(*tasks) == [("a",), ("b",), ("c", "d")]


def test_explicit_batches_are_used_as_given() -> None:
    explicit = (Batch(1, ("b",), False), Batch(2, ("a", "c"), True))
    plan = Plan(tasks=(task("a"), task("b"), task("c")), batches=explicit)

    assert plan_batches(plan) == explicit


def test_a_parsed_plan_batches_like_the_same_plan_built_by_hand() -> None:
    parsed = parse_plan(
        "tasks:\n"
        "  - {id: a, run: x}\n"
        "  - {id: b, run: x}\n"
        "  - {id: c, run: x, depends_on: [a, b]}\n"
    )

    assert plan_batches(parsed) == plan_batches(
        Plan(tasks=(task("a"), task("b"), task("c", "a", "b")))
    )


def test_a_hand_built_plan_with_a_cycle_is_refused_not_silently_truncated() -> None:
    with pytest.raises(PlanError) as refused:
        plan_batches(Plan(tasks=(task("a", "b"), task("b", "a"), task("c"))))

    assert refused.value.problems == ["dependency cycle: a -> b -> a"]


def test_a_hand_built_plan_with_an_unknown_dependency_is_refused() -> None:
    with pytest.raises(PlanError, match="depends on unknown task 'ghost'"):
        plan_batches(Plan(tasks=(task("a", "ghost"),)))


def test_hand_built_explicit_batches_are_checked_too() -> None:
    plan = Plan(tasks=(task("a"), task("b", "a")), batches=(Batch(1, ("a", "b"), True),))

    with pytest.raises(PlanError, match="task 'b': depends on task 'a'"):
        plan_batches(plan)


# --- mode selection ---------------------------------------------------------------


def test_a_batch_with_several_parallel_tasks_selects_parallel_mode() -> None:
    batches = (Batch(1, ("setup",), False), Batch(2, ("a", "b", "c"), True))

    assert select_mode(batches) == ModeDecision(
        "parallel", "batch 2 runs 3 tasks in parallel (a, b, c)"
    )


def test_the_reason_counts_the_other_parallel_batches() -> None:
    batches = (Batch(1, ("a", "b"), True), Batch(2, ("c", "d"), True), Batch(3, ("e", "f"), True))

    assert select_mode(batches).reason == (
        "batch 1 runs 2 tasks in parallel (a, b); 2 more batches run tasks in parallel"
    )


def test_a_long_task_list_is_shortened_in_the_reason() -> None:
    ids = tuple(f"t{n}" for n in range(8))

    assert select_mode([Batch(1, ids, True)]).reason == (
        "batch 1 runs 8 tasks in parallel (t0, t1, t2, t3, t4 and 3 more)"
    )


def test_single_task_batches_select_sequential_mode() -> None:
    batches = (Batch(1, ("a",), True), Batch(2, ("b",), False))

    assert select_mode(batches) == ModeDecision(
        "sequential", "no batch has more than one task that can run in parallel"
    )


def test_a_many_task_batch_marked_not_parallel_selects_sequential_mode() -> None:
    assert select_mode([Batch(1, ("a", "b", "c"), False)]).mode == "sequential"


def test_no_batches_select_sequential_mode() -> None:
    assert select_mode([]).mode == "sequential"


def test_mode_selection_follows_the_derived_batches() -> None:
    chain = Plan(tasks=(task("a"), task("b", "a")))
    pair = Plan(tasks=(task("a"), task("b")))

    assert select_mode(plan_batches(chain)).mode == "sequential"
    assert select_mode(plan_batches(pair)).mode == "parallel"
