"""Drives a `schedule: ready` run: no batch barriers.

A task starts as soon as every task it depends on has landed, on the tip they landed on,
up to `max_concurrency` at once (and each profile's own limit). A finished task queues for
merge validation. The single merge writer takes everything queued at once, as bors and Zuul
do: the queue becomes a batch (a merge round, numbered as it forms), which is merged onto
the tip, tested, bisected on red and landed exactly as batch mode's batches are, conflicted
tasks resolved or re-run on the new tip. Tasks keep running while a round merges and tests.

What the domain decides (plait.domain.run.ready): which waiting task may start, which is
skipped because a dependency did not land, and what a resumed run does with the queue.
A resumed run first finishes the rounds a crash or a stop left unfinished, as batch mode
resumes its batches, then carries finished tasks to the next round and runs the rest.

A worktree that cannot be made for a task while others run makes the whole run fall back
to one task at a time (FellBackToSequential); failing again with nothing else running, the
run fails, resumable, once what did run has landed. `on_task_failure: stop`: a task that
failed (after its retries) ends the run once the tasks already running have finished and
landed; no new task starts.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from plait.domain.events import FellBackToSequential
from plait.domain.plan.model import Batch, OnTaskFailure, Task
from plait.domain.run.decide import batch_has_work
from plait.domain.run.entities import READY_QUEUE
from plait.domain.run.ready import next_round, queue_skips, resume_queue, startable, stuck
from plait.execution.git.cli import GitError
from plait.execution.run.batch_executor import (
    BatchEnd,
    BatchExecutor,
    BatchOutcome,
    carried_result,
)
from plait.execution.run.context import RunContext
from plait.execution.run.task_runner import AttemptResult, Outcome
from plait.execution.worktrees.manager import Worktree, WorktreeError

Running = dict["asyncio.Task[AttemptResult | None]", str]


@dataclass
class QueueOutcome:
    status: BatchEnd
    tip: str
    errors: list[str] = field(default_factory=list)
    unprepared: list[str] = field(default_factory=list)


class ReadyQueue:
    def __init__(self, ctx: RunContext, batches: BatchExecutor) -> None:
        self.ctx = ctx
        self.batches = batches
        self.files = {task.id: task.files for task in ctx.plan.tasks}
        self.limit = ctx.plan.max_concurrency if ctx.recorder.state.mode == "parallel" else 1
        self.halted = False  # no new task starts: a failure under `stop`, or a stop

    async def drive(self, tip: str) -> QueueOutcome:
        outcome = QueueOutcome(BatchEnd.COMPLETED, tip)
        for batch in self._unfinished_rounds():
            if not self._took(await self.batches.execute(batch, outcome.tip), outcome):
                return outcome
        if outcome.status is BatchEnd.FAILED:
            return outcome  # an unfinished round failed again: no new task starts
        decided = resume_queue(self.ctx.recorder.state)
        await self.ctx.recorder.record(*decided.requeued)
        finished = [carried_result(self.ctx, t) for t in decided.carried]
        # A TaskGroup: if recording fails for good, every running task is cancelled, which
        # kills its process group.
        async with asyncio.TaskGroup() as group:
            await self._loop(group, finished, outcome)
        return outcome

    async def _loop(
        self, group: asyncio.TaskGroup, finished: list[AttemptResult], outcome: QueueOutcome
    ) -> None:
        ctx = self.ctx
        running: Running = {}
        merging: asyncio.Task[BatchOutcome] | None = None
        while True:
            self.halted = self.halted or ctx.stopping
            if not self.halted:
                await ctx.recorder.record(*queue_skips(ctx.recorder.state))
                await self._start(group, running, finished, outcome)
            if merging is None and finished and not ctx.stopping:
                # The single merge writer takes everything that finished, at once.
                merging = group.create_task(self._round(finished, outcome.tip))
                finished = []
            if not running and merging is None:
                break
            waited: set[asyncio.Future[Any]] = {*running, *([merging] if merging else [])}
            done, _ = await asyncio.wait(waited, return_when=asyncio.FIRST_COMPLETED)
            if merging is not None and merging in done:
                self._took(merging.result(), outcome)
                merging = None
            for task in [t for t in running if t in done]:
                del running[task]
                result = task.result()
                if result is not None:
                    finished.append(result)
                    if result.outcome is Outcome.FAILED:
                        self.halted |= ctx.plan.on_task_failure is OnTaskFailure.STOP
        if ctx.stopping:
            outcome.status = BatchEnd.STOPPED
        elif outcome.status is BatchEnd.COMPLETED and not self.halted:
            left = stuck(ctx.recorder.state)
            if left is not None:
                outcome.status, outcome.errors = BatchEnd.FAILED, [left]

    async def _start(
        self,
        group: asyncio.TaskGroup,
        running: Running,
        finished: list[AttemptResult],
        outcome: QueueOutcome,
    ) -> None:
        """Start what may start now: ready, with room under the limits."""
        busy = {*running.values(), *(r.task_id for r in finished)}
        for task_id in startable(self.ctx.recorder.state, self.files, busy):
            if len(running) >= self.limit:
                return
            task = self.ctx.plan.task(task_id)
            if not self._profile_has_room(task, running):
                continue
            try:
                worktree = await self.batches.provision(READY_QUEUE, task, outcome.tip)
            except (GitError, WorktreeError, OSError) as exc:
                await self._unprepared(task, exc, running, outcome)
                if self.halted:
                    return
                continue
            running[group.create_task(self._attempts(task, worktree, outcome.tip))] = task_id

    async def _attempts(self, task: Task, worktree: Worktree, tip: str) -> AttemptResult | None:
        scratch = BatchOutcome(BatchEnd.COMPLETED, tip)
        result = await self.batches.attempts(READY_QUEUE, task, worktree, tip, scratch)
        if scratch.unprepared:  # no worktree for a retry: it waits, the run fails resumable
            self.halted = True
            return None
        return result

    async def _unprepared(
        self, task: Task, exc: BaseException, running: Running, outcome: QueueOutcome
    ) -> None:
        """No worktree for a task: the run falls back to one task at a time and tries again
        once the others are done; with nothing else running, the task cannot run at all and
        the run fails (resumable) once what finished has landed."""
        error = f"task {task.id!r}: worktree: {exc}"
        if not running:
            self.halted = True
            outcome.status = BatchEnd.FAILED
            outcome.errors.append(error)
            outcome.unprepared.append(task.id)
            return
        if self.limit > 1:
            self.limit = 1
            await self.ctx.recorder.record(
                FellBackToSequential(
                    run_id=self.ctx.run_id, batch_id=None, reason=error, task_ids=[task.id]
                )
            )

    def _profile_has_room(self, task: Task, running: Running) -> bool:
        plan = self.ctx.plan
        profile = plan.profile_for(task)
        if profile is None or profile.max_concurrency is None:
            return True
        same = [t for t in running.values() if plan.profile_for(plan.task(t)) == profile]
        return len(same) < profile.max_concurrency

    async def _round(self, finished: list[AttemptResult], tip: str) -> BatchOutcome:
        state = self.ctx.recorder.state
        batch = Batch(next_round(state), tuple(r.task_id for r in finished), len(finished) > 1)
        return await self.batches.merge_round(batch, tip, finished)

    def _took(self, ended: BatchOutcome, outcome: QueueOutcome) -> bool:
        """Fold a round's end into the queue's; False once the run cannot go on."""
        outcome.tip = ended.tip
        if ended.status is BatchEnd.STOPPED:
            outcome.status = BatchEnd.STOPPED
            return False
        if ended.status is BatchEnd.FAILED:
            self.halted = True
            outcome.status = BatchEnd.FAILED
            outcome.errors += ended.errors
            outcome.unprepared += ended.unprepared
        return True

    def _unfinished_rounds(self) -> list[Batch]:
        state = self.ctx.recorder.state
        return [
            Batch(b.batch_id, tuple(b.task_ids), b.can_parallel)
            for b in state.sorted_batches()
            if batch_has_work(state, b.batch_id)
        ]
