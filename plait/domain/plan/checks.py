"""Checks that span tasks: ids, dependencies, cycles, and explicit batches.

They take model values, so they serve both the plan reader and `plan_batches`
(which must not trust a Plan that was constructed directly).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence

from plait.domain.plan.fields import show
from plait.domain.plan.graph import find_cycles
from plait.domain.plan.model import Batch, Task
from plait.domain.plan.paths import overlap


def unique_tasks(tasks: Sequence[Task]) -> list[Task]:
    """The first task of each id: later duplicates are reported, not scheduled."""
    seen: dict[str, Task] = {}
    for task in tasks:
        seen.setdefault(task.id, task)
    return list(seen.values())


def graph_problems(tasks: Sequence[Task]) -> list[str]:
    problems = [
        f"duplicate task id {show(task_id)}"
        for task_id, count in Counter(t.id for t in tasks).items()
        if count > 1
    ]
    tasks = unique_tasks(tasks)
    known = {task.id for task in tasks}
    for task in tasks:
        problems.extend(_dependency_problems(task, known))
    deps = {
        task.id: [dep for dep in task.depends_on if dep in known and dep != task.id]
        for task in tasks
    }
    for cycle in find_cycles([task.id for task in tasks], deps):
        problems.append("dependency cycle: " + " -> ".join(cycle))
    return problems


def _dependency_problems(task: Task, known: set[str]) -> list[str]:
    problems = []
    where = f"task {show(task.id)}"
    for dep, count in Counter(task.depends_on).items():
        if dep == task.id:
            problems.append(f"{where}: depends on itself")
        elif dep not in known:
            problems.append(f"{where}: depends on unknown task {show(dep)}")
        if count > 1:
            problems.append(f"{where}: lists dependency {show(dep)} {count} times")
    return problems


def batch_problems(batches: Sequence[Batch], tasks: Sequence[Task]) -> list[str]:
    """Explicit batches must hold every task once and run each dependency in an earlier batch.

    "Earlier" is the order of the list, which is the order batches run in.
    """
    problems = [
        f"duplicate batch id {batch_id}"
        for batch_id, count in Counter(b.batch_id for b in batches).items()
        if count > 1
    ]
    by_id = {task.id: task for task in unique_tasks(tasks)}
    placed: dict[str, list[int]] = defaultdict(list)  # task id -> positions in `batches`
    for position, batch in enumerate(batches):
        if not batch.task_ids:
            problems.append(f"batch {batch.batch_id}: has no tasks")
        for task_id in batch.task_ids:
            if task_id in by_id:
                placed[task_id].append(position)
            else:
                problems.append(f"batch {batch.batch_id}: unknown task {show(task_id)}")
        problems.extend(_parallel_file_problems(batch, by_id))
    for task_id, task in by_id.items():
        positions = placed.get(task_id, [])
        if not positions:
            problems.append(f"task {show(task_id)}: is in no batch")
        elif len(positions) > 1:
            ids = ", ".join(str(batches[p].batch_id) for p in positions)
            problems.append(f"task {show(task_id)}: is in more than one batch ({ids})")
        else:
            problems.extend(_order_problems(task, positions[0], placed, batches))
    return problems


def _order_problems(
    task: Task, position: int, placed: dict[str, list[int]], batches: Sequence[Batch]
) -> list[str]:
    problems = []
    for dep in task.depends_on:
        dep_positions = placed.get(dep, [])
        if len(dep_positions) == 1 and dep_positions[0] >= position:
            problems.append(
                f"task {show(task.id)}: depends on task {show(dep)}, which must be in a batch"
                f" before batch {batches[position].batch_id}"
                f" but is in batch {batches[dep_positions[0]].batch_id}"
            )
    return problems


def _parallel_file_problems(batch: Batch, by_id: dict[str, Task]) -> list[str]:
    if not batch.can_parallel:
        return []
    problems = []
    members = [by_id[task_id] for task_id in batch.task_ids if task_id in by_id]
    for index, task in enumerate(members):
        for other in members[index + 1 :]:
            shared = overlap(task.files, other.files)
            if shared is not None:
                mine, theirs = shared
                paths = show(mine) if mine == theirs else f"{show(mine)} / {show(theirs)}"
                problems.append(
                    f"batch {batch.batch_id}: tasks {show(task.id)} and {show(other.id)}"
                    f" both touch {paths}, so they cannot run in parallel"
                )
    return problems
