"""What each schedule is expected to take for a plan: `plait plan` shows both.

Each task weighs its `estimate` (seconds); when some task has none, every task weighs one
and the figures count tasks instead. Both schedules are simulated with the plan's
`max_concurrency`, tasks taken in plan order; merges and test runs are not counted (they
add about one test run per batch in batch mode, and one per merge round on the critical
path in ready mode).

- batch: batch by batch, each batch waiting for the one before it (the barrier).
- ready: a task starts as soon as every task it depends on is done.

The critical path is the chain of dependencies that weighs the most: no schedule can take
less than it.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from plait.domain.plan.batching import plan_batches
from plait.domain.plan.graph import dependency_levels
from plait.domain.plan.model import Plan


@dataclass(frozen=True)
class Expected:
    unit: str  # "s": from the tasks' estimates; "tasks": each task weighs one
    batch: float  # the batch schedule's expected length
    ready: float  # the ready schedule's expected length
    critical_path: tuple[str, ...]  # the heaviest chain of dependencies, first task first
    critical_length: float
    unestimated: tuple[str, ...]  # tasks without an estimate (then unit is "tasks")

    def to_dict(self) -> dict[str, object]:
        return {
            "unit": self.unit,
            "batch": self.batch,
            "ready": self.ready,
            "critical_path": list(self.critical_path),
            "critical_length": self.critical_length,
            "unestimated": list(self.unestimated),
        }


def expected(plan: Plan) -> Expected:
    unestimated = tuple(t.id for t in plan.tasks if t.estimate is None)
    unit = "tasks" if unestimated else "s"
    weight = {t.id: (1.0 if unestimated else float(t.estimate or 0.0)) for t in plan.tasks}
    deps = {t.id: t.depends_on for t in plan.tasks}
    path, length = critical_path(plan.task_ids, deps, weight)
    batch = sum(
        _makespan(b.task_ids, {}, weight, plan.max_concurrency if b.can_parallel else 1)
        for b in plan_batches(plan)
    )
    ready = _makespan(plan.task_ids, deps, weight, plan.max_concurrency)
    return Expected(unit, batch, ready, path, length, unestimated)


def critical_path(
    order: Sequence[str], deps: Mapping[str, Sequence[str]], weight: Mapping[str, float]
) -> tuple[tuple[str, ...], float]:
    """The heaviest chain through the dependencies (the first found on a tie), and its
    weight."""
    finish: dict[str, float] = {}
    before: dict[str, str | None] = {}
    for level in dependency_levels(order, deps):
        for task_id in level:
            heaviest = max(deps[task_id], key=lambda d: finish[d], default=None)
            before[task_id] = heaviest
            finish[task_id] = weight[task_id] + (finish[heaviest] if heaviest else 0.0)
    if not finish:
        return (), 0.0
    last: str | None = max(order, key=lambda t: finish[t])
    length = finish[last] if last else 0.0
    chain: list[str] = []
    while last is not None:
        chain.append(last)
        last = before[last]
    return tuple(reversed(chain)), length


def _makespan(
    order: Sequence[str],
    deps: Mapping[str, Sequence[str]],
    weight: Mapping[str, float],
    limit: int,
) -> float:
    """List scheduling: whenever fewer than `limit` tasks run, the first task in `order`
    whose dependencies (among `order`) are done starts. The time the last one ends."""
    members = set(order)
    done: set[str] = set()
    running: list[tuple[float, int, str]] = []  # (end, position, task), a heap
    now = 0.0
    left = list(order)
    while left or running:
        for task_id in list(left):
            if len(running) >= limit:
                break
            if all(d in done or d not in members for d in deps.get(task_id, ())):
                left.remove(task_id)
                heapq.heappush(running, (now + weight[task_id], order.index(task_id), task_id))
        if not running:
            break  # what is left depends on something outside `order`: not scheduled here
        now, _, finished = heapq.heappop(running)
        done.add(finished)
    return now
