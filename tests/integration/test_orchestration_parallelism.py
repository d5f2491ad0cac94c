"""Parallel batches really overlap, within max_concurrency; dependencies run in order and see
what they depend on."""

from __future__ import annotations

import shlex
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

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


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    async with open_harness(tmp_path) as opened:
        yield opened


def meets_a_partner(shared: Path, task_id: str) -> str:
    """Leaves a marker, then waits until some other task has left one too: only tasks that
    run at the same time can both get past the wait."""
    markers = shlex.quote(str(shared))
    return (
        f"touch {markers}/started-{task_id}; "
        + wait_until(f'[ "$(ls {markers} | grep -c ^started-)" -ge 2 ]')
        + "; "
        + write(f"{task_id}.txt", task_id)
    )


async def test_independent_tasks_overlap_but_never_exceed_max_concurrency(
    harness: Harness,
) -> None:
    ids = ["a", "b", "c", "d"]
    done = await harness.run(
        plan(*(task(i, meets_a_partner(harness.shared, i)) for i in ids), max_concurrency=2)
    )

    assert done.result.status == "landed", done.result.error
    assert of_type(done.events, "ExecutionModeSelected")[0]["mode"] == "parallel"
    assert most_running_at_once(done.events, batch_id=1) == 2
    assert {f"{i}.txt" for i in ids} <= files_on(harness.repo, "main")


async def test_a_task_starts_before_its_sibling_finished(harness: Harness) -> None:
    done = await harness.run(
        plan(*(task(i, meets_a_partner(harness.shared, i)) for i in ("left", "right")))
    )

    assert done.result.status == "landed", done.result.error
    second_start = [i for i, e in enumerate(done.events) if e.type == "TaskStarted"][1]
    first_end = min(first_index(done.events, "TaskSucceeded", task_id=t) for t in ("left", "right"))
    assert second_start < first_end


async def test_a_dependent_task_runs_after_its_dependency_landed_and_sees_its_files(
    harness: Harness,
) -> None:
    schema = task("schema", write("db/schema.sql", "CREATE TABLE t;"))
    # Fails unless the dependency's file is in its worktree; copies it as proof.
    model = task("model", "test -f db/schema.sql && cp db/schema.sql model.sql", "schema")
    done = await harness.run(plan(model, schema))

    assert done.result.status == "landed", done.result.error
    started = {d["task_id"]: d["batch_id"] for d in of_type(done.events, "TaskStarted")}
    assert started == {"schema": 1, "model": 2}
    assert first_index(done.events, "BatchLanded", batch_id=1) < first_index(
        done.events, "TaskStarted", task_id="model"
    )
    assert file_on(harness.repo, "main", "model.sql") == "CREATE TABLE t;"


async def test_a_chain_of_dependencies_runs_one_task_at_a_time_in_order(
    harness: Harness,
) -> None:
    steps = [
        task("one", "echo 1 >> order.txt"),
        task("two", "echo 2 >> order.txt", "one"),
        task("three", "echo 3 >> order.txt", "two"),
    ]
    done = await harness.run(plan(*reversed(steps)))

    assert done.result.status == "landed", done.result.error
    assert [d["task_id"] for d in of_type(done.events, "TaskStarted")] == ["one", "two", "three"]
    assert most_running_at_once(done.events) == 1
    assert file_on(harness.repo, "main", "order.txt") == "1\n2\n3"
