"""A plan is parsed and batched once per command: a start takes the plan its command just
submitted as it is, and the batches PlanAccepted recorded; the run's driver takes the plan
its start parsed."""

from __future__ import annotations

import cProfile
import pstats
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path
from typing import TypeVar

import pytest

from plait.domain.plan import batching, parsing
from plait.domain.plan.parsing import plan_from_mapping
from tests.integration.orchestration_helpers import Harness, open_harness, plan, task, write

R = TypeVar("R")
COUNTED = {
    (parsing.__file__, "plan_from_mapping"): "parsed",
    (batching.__file__, "plan_batches"): "batched",
}


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    async with open_harness(tmp_path) as opened:
        yield opened


async def counting(work: Awaitable[R]) -> tuple[R, dict[str, int]]:
    """How often `work` parses and batches a plan (profiled: every call, wherever from)."""
    profile = cProfile.Profile()
    profile.enable()
    try:
        result = await work
    finally:
        profile.disable()
    stats = pstats.Stats(profile).stats  # type: ignore[attr-defined]
    counts = {"parsed": 0, "batched": 0}
    for (path, _line, name), (_, calls, *_rest) in stats.items():
        if (path, name) in COUNTED:
            counts[COUNTED[(path, name)]] += calls
    return result, counts


THE_PLAN = plan(task("a", write("a.txt", "a")), task("b", write("b.txt", "b"), "a"))


async def test_a_start_after_a_submit_parses_and_batches_the_plan_once(harness: Harness) -> None:
    project_id = await harness.project()
    parsed = plan_from_mapping(dict(THE_PLAN))  # the command reads its plan file: once

    async def submit_start_and_finish() -> str:
        await harness.service.submit_plan(project_id, parsed)
        run_id = await harness.service.start_run(project_id)
        await harness.service.wait_run(run_id)
        return run_id

    run_id, counts = await counting(submit_start_and_finish())

    assert counts == {"parsed": 0, "batched": 1}
    state = harness.service.run_state(run_id)
    assert state is not None
    assert state.status == "landed"
    assert [b.task_ids for b in state.batches.values()] == [["a"], ["b"]]


async def test_a_start_with_an_override_parses_the_plan_once_with_it(harness: Harness) -> None:
    project_id = await harness.project()
    await harness.service.submit_plan(project_id, plan_from_mapping(dict(THE_PLAN)))

    async def start_and_finish() -> str:
        run_id = await harness.service.start_run(project_id, max_concurrency=1)
        await harness.service.wait_run(run_id)
        return run_id

    run_id, counts = await counting(start_and_finish())

    assert counts == {"parsed": 1, "batched": 0}
    state = harness.service.run_state(run_id)
    assert state is not None
    assert state.max_concurrency == 1
