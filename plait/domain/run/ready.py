"""What a `schedule: ready` run does next, decided from its state: which waiting tasks may
start now, which are skipped, and what a resumed run does with the tasks it finds in the
ready queue. Pure: the ready queue in execution records what these return and starts what
they name.

A task waits in the ready queue (batch id READY_QUEUE) until every task it depends on has
landed; then it starts on the tip they landed on. Finished, it waits for the next merge
round, which takes it into a batch of its own number. Tasks declaring overlapping `files`
never run side by side (they would conflict at merge time, as batch mode's split avoids).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field

from plait.domain.events import TaskRequeued, TaskSkipped
from plait.domain.plan.paths import overlap
from plait.domain.run.decide import RESUME_TASK, Step
from plait.domain.run.entities import READY_QUEUE, TaskState
from plait.domain.run.state import RunState
from plait.domain.run_actions import skips_among
from plait.domain.statuses import SETTLED_TASK, TaskStatus

WAITING = (TaskStatus.PENDING, TaskStatus.RERUN)


def queued(state: RunState) -> list[TaskState]:
    """The tasks in the ready queue (no merge round took them in yet), in plan order."""
    return [t for t in state.tasks.values() if t.batch_id == READY_QUEUE]


def waiting(state: RunState) -> list[str]:
    return [t.task_id for t in queued(state) if t.status in WAITING]


def startable(
    state: RunState, files: Mapping[str, Sequence[str]], busy: Collection[str]
) -> list[str]:
    """The waiting tasks that may start now, in plan order: every task they depend on has
    landed, and none of their declared `files` overlaps those of a task that is busy
    (`busy`: running, or finished and waiting for its merge; or in a merge round that has
    not settled it) or that starts before them now."""
    in_rounds = [
        t.task_id
        for t in state.tasks.values()
        if t.batch_id != READY_QUEUE and t.status not in SETTLED_TASK
    ]
    busy = {*busy, *in_rounds}
    chosen: list[str] = []
    for task_id in waiting(state):
        if task_id in busy:
            continue
        task = state.tasks[task_id]
        if any(state.tasks[dep].status != TaskStatus.LANDED for dep in task.depends_on):
            continue
        mine = files.get(task_id, ())
        if mine and any(
            overlap(mine, files.get(other, ())) is not None for other in (*busy, *chosen)
        ):
            continue
        chosen.append(task_id)
    return chosen


def queue_skips(state: RunState) -> list[TaskSkipped]:
    """Skip the waiting tasks one of whose dependencies did not land."""
    return skips_among(state, waiting(state), READY_QUEUE)


@dataclass
class QueueResume:
    """What a resumed run does with the ready queue: tasks whose branch is finished go to
    the next merge round as they are; one that failed or changed nothing before a round
    took it in runs again (the requeues to record first)."""

    carried: list[str] = field(default_factory=list)
    requeued: list[TaskRequeued] = field(default_factory=list)


def resume_queue(state: RunState) -> QueueResume:
    plan = QueueResume()
    for task in queued(state):
        step = RESUME_TASK[task.status]
        if step is Step.CARRY and task.worktree_id:
            plan.carried.append(task.task_id)
        elif step is Step.REQUEUE:
            plan.requeued.append(
                TaskRequeued(
                    run_id=state.run_id,
                    batch_id=READY_QUEUE,
                    task_id=task.task_id,
                    reason="the run was resumed",
                )
            )
    return plan


def next_round(state: RunState) -> int:
    """The batch id of the next merge round: rounds are numbered from 1 as they form."""
    return max(state.batches, default=READY_QUEUE) + 1


def stuck(state: RunState) -> str | None:
    """Why the queue cannot finish when nothing runs and nothing waits for a merge: the
    waiting tasks none of whose dependencies can land any more (a bug if ever seen; the run
    fails resumable rather than end with a task that never ran)."""
    left = waiting(state)
    if not left:
        return None
    return "tasks that could not start: " + ", ".join(left[:10])
