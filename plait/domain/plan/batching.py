"""Batches from a plan, and the choice between parallel and sequential execution.

A batch is a dependency level (Kahn's algorithm, tasks in plan order), split
so that tasks declaring overlapping `files` never share a batch: those would
conflict at merge time, so running them side by side only wastes work.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from plait.domain.errors import PlanError
from plait.domain.plan.checks import batch_problems, graph_problems
from plait.domain.plan.graph import dependency_levels
from plait.domain.plan.model import Batch, Plan, Task
from plait.domain.plan.paths import overlap

__all__ = ["Batch", "ModeDecision", "plan_batches", "select_mode"]

_NAMED_IN_REASON = 5  # task ids spelled out in a mode reason before "and N more"


@dataclass(frozen=True)
class ModeDecision:
    mode: Literal["parallel", "sequential"]
    reason: str


def plan_batches(plan: Plan) -> tuple[Batch, ...]:
    """The plan's batches, numbered 1..n: its explicit ones if given, else derived.

    Raises PlanError only for a Plan built directly rather than parsed, whose
    dependencies or batches are broken.
    """
    problems = graph_problems(plan.tasks)
    if plan.batches is not None:
        problems += batch_problems(plan.batches, plan.tasks)
    if problems:
        raise PlanError(problems)
    if plan.batches is not None:
        return plan.batches
    by_id = {task.id: task for task in plan.tasks}
    deps = {task.id: task.depends_on for task in plan.tasks}
    groups = [
        group
        for level in dependency_levels(plan.task_ids, deps)
        for group in split_by_files([by_id[task_id] for task_id in level])
    ]
    return tuple(
        Batch(batch_id=number, task_ids=tuple(t.id for t in group), can_parallel=len(group) > 1)
        for number, group in enumerate(groups, 1)
    )


def split_by_files(level: Sequence[Task]) -> list[list[Task]]:
    """Greedy: each task joins the first group none of whose tasks touch its files."""
    groups: list[list[Task]] = []
    for task in level:
        for group in groups:
            if all(overlap(task.files, other.files) is None for other in group):
                group.append(task)
                break
        else:
            groups.append([task])
    return groups


def select_mode(batches: Iterable[Batch], max_concurrency: int | None = None) -> ModeDecision:
    """Parallel iff some batch may run more than one task at once (the seed's rule). The
    reason says how many run at once when `max_concurrency` holds a batch back."""
    parallel = [b for b in batches if b.can_parallel and len(b.task_ids) > 1]
    if not parallel:
        return ModeDecision(
            "sequential", "no batch has more than one task that can run in parallel"
        )
    first = parallel[0]
    count = len(first.task_ids)
    if max_concurrency is not None and max_concurrency < count:
        reason = (
            f"batch {first.batch_id} has {count} tasks that can run in parallel"
            f" ({_name_some(first.task_ids)}), {max_concurrency} at a time (max_concurrency)"
        )
    else:
        reason = (
            f"batch {first.batch_id} runs {count} tasks in parallel ({_name_some(first.task_ids)})"
        )
    others = len(parallel) - 1
    if others:
        reason += (
            f"; {others} more {'batch runs' if others == 1 else 'batches run'} tasks in parallel"
        )
    return ModeDecision("parallel", reason)


def _name_some(task_ids: Sequence[str]) -> str:
    named = ", ".join(task_ids[:_NAMED_IN_REASON])
    rest = len(task_ids) - _NAMED_IN_REASON
    return f"{named} and {rest} more" if rest > 0 else named
