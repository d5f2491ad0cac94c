"""Runs one batch: its tasks (in parallel up to max_concurrency when the batch allows it),
then merge validation, then the sequential re-run of conflicted tasks on the new tip.

A task that fails is retried in a fresh worktree up to the plan's `retries`. With
`on_task_failure: stop`, a batch fails when a task still fails after its retries; what did
succeed is landed first, so no finished work waits on a broken sibling. With `land`, the
batch completes without it.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import time
from dataclasses import dataclass, field

from plait.domain.events import (
    BatchFailed,
    BatchStarted,
    FellBackToSequential,
    RunEvent,
    TaskRequeued,
)
from plait.domain.plan.model import Batch, Task
from plait.domain.run.decide import batch_end, resume_batch
from plait.domain.statuses import TaskStatus
from plait.execution.git.cli import GitError
from plait.execution.run.batch_cleanup import clean_up
from plait.execution.run.conflict_resolution import can_resolve, resolve_conflict
from plait.execution.run.context import RunContext
from plait.execution.run.merge_validator import Candidate, MergeValidator
from plait.execution.run.task_runner import (
    AttemptResult,
    Outcome,
    make_worktree,
    run_attempt,
)
from plait.execution.worktrees.manager import Worktree, WorktreeError


class BatchEnd(enum.Enum):
    COMPLETED = "completed"
    FAILED = "failed"  # the run cannot go on (a task failed under `stop`, or had no worktree)
    STOPPED = "stopped"


@dataclass
class BatchOutcome:
    status: BatchEnd
    tip: str
    landed: list[str] = field(default_factory=list)
    left_out: dict[str, str] = field(default_factory=dict)  # task id -> why it did not land
    errors: list[str] = field(default_factory=list)
    unprepared: list[str] = field(default_factory=list)  # tasks no worktree could be made for


class BatchExecutor:
    def __init__(self, ctx: RunContext, validator: MergeValidator) -> None:
        self.ctx = ctx
        self.validator = validator
        # Worktrees are made one at a time, also when a `schedule: ready` run makes them
        # while a merge round re-runs a conflicted task (see _run_tasks).
        self._provisioning = asyncio.Lock()

    async def execute(self, batch: Batch, tip: str) -> BatchOutcome:
        """Run the batch's tasks, then merge, test and land what succeeded."""
        started = time.monotonic()
        await self._start(batch)
        outcome = BatchOutcome(status=BatchEnd.COMPLETED, tip=tip)
        results = await self._run_tasks(batch, tip, outcome)
        return await self._conclude(batch, results, outcome, started)

    async def merge_round(
        self, batch: Batch, tip: str, results: list[AttemptResult]
    ) -> BatchOutcome:
        """A `schedule: ready` run's merge round: tasks that already ran (`results`, each
        task's last attempt) become the batch, then merge, test and land as a batch does."""
        started = time.monotonic()
        await self._start(batch)
        outcome = BatchOutcome(status=BatchEnd.COMPLETED, tip=tip)
        return await self._conclude(batch, results, outcome, started)

    async def _start(self, batch: Batch) -> None:
        await self.ctx.recorder.record(
            BatchStarted(
                run_id=self.ctx.run_id,
                batch_id=batch.batch_id,
                task_ids=batch.task_ids,
                can_parallel=batch.can_parallel,
            )
        )

    async def _conclude(
        self, batch: Batch, results: list[AttemptResult], outcome: BatchOutcome, started: float
    ) -> BatchOutcome:
        ctx = self.ctx
        if ctx.stopping:
            outcome.status = BatchEnd.STOPPED
            return outcome
        tip = outcome.tip
        candidates = [
            Candidate(r.task_id, ctx.recorder.state.tasks[r.task_id].worktree_id or "", r.commit)
            for r in results
            if r.outcome is Outcome.SUCCEEDED
        ]
        merged = await self.validator.validate(batch.batch_id, tip, candidates)
        if merged.stopped:
            outcome.status = BatchEnd.STOPPED
            return outcome
        outcome.tip = merged.tip
        outcome.landed += merged.merged
        for task_id in merged.ejected:
            outcome.left_out[task_id] = "its branch broke the tests (culprit)"
        if merged.conflicted:
            await self._rerun_conflicted(batch, merged.conflicted, outcome)
            if outcome.status is BatchEnd.STOPPED:
                return outcome
        for r in results:
            if r.outcome in (Outcome.FAILED, Outcome.NO_CHANGE):
                outcome.left_out[r.task_id] = r.error
        await clean_up(ctx, batch, outcome.left_out)
        # The domain decides the batch's end from what happened.
        end = batch_end(
            ctx.recorder.state,
            batch.batch_id,
            outcome.left_out,
            outcome.unprepared,
            time.monotonic() - started,
        )
        if isinstance(end, BatchFailed):
            outcome.status, outcome.errors = BatchEnd.FAILED, list(end.errors)
        await ctx.recorder.record(end)
        return outcome

    # -- running tasks -------------------------------------------------------------------

    async def _run_tasks(
        self, batch: Batch, tip: str, outcome: BatchOutcome
    ) -> list[AttemptResult]:
        ctx = self.ctx
        tasks, carried = await self._resume_aware(batch)
        # Worktrees first, one at a time (git's worktree administration races with commits
        # in other worktrees), their WorktreeCreated one append before any task starts.
        ready, created, failed_to_prepare = [], [], []
        async with self._provisioning:
            for task in tasks:
                try:
                    worktree, event = await self._make(batch.batch_id, task, tip)
                except (GitError, WorktreeError, OSError) as exc:
                    failed_to_prepare.append(task)
                    outcome.errors.append(f"task {task.id!r}: worktree: {exc}")
                    continue
                ready.append((task, worktree))
                created.append(event)
            await ctx.recorder.record(*created)
        limit = ctx.plan.max_concurrency if batch.can_parallel else 1
        gate = asyncio.Semaphore(limit)
        # A profile's own limit (providers rate-limit): at most that many of its tasks at once.
        per_profile = {
            p.name: asyncio.Semaphore(p.max_concurrency)
            for p in ctx.plan.profiles
            if p.max_concurrency is not None
        }

        async def one(task: Task, worktree: Worktree) -> AttemptResult:
            profile = ctx.plan.profile_for(task)
            profile_gate = per_profile.get(profile.name) if profile is not None else None
            async with gate, profile_gate or contextlib.nullcontext():
                return await self.attempts(batch.batch_id, task, worktree, tip, outcome)

        # A TaskGroup, not gather: if recording fails (the store is gone for good), the
        # sibling tasks are cancelled, which kills their process groups.
        async with asyncio.TaskGroup() as group:
            running = [group.create_task(one(t, w)) for t, w in ready]
        results = carried + [r.result() for r in running]
        if failed_to_prepare and not ctx.stopping:
            results += await self._fall_back(batch, failed_to_prepare, tip, outcome)
        return results

    async def _resume_aware(self, batch: Batch) -> tuple[list[Task], list[AttemptResult]]:
        """Which of the batch's tasks must run, and which are carried to the merge as they
        are (the domain decides, see plait.domain.run.decide.resume_batch)."""
        ctx = self.ctx
        decided = resume_batch(ctx.recorder.state, batch.batch_id)
        carried = [carried_result(ctx, task_id) for task_id in decided.carried]
        await ctx.recorder.record(*decided.requeued)
        return [ctx.plan.task(t) for t in decided.to_run], carried

    async def _fall_back(
        self, batch: Batch, tasks: list[Task], tip: str, outcome: BatchOutcome
    ) -> list[AttemptResult]:
        """Parallel preparation failed for these: run them one by one instead."""
        ctx = self.ctx
        await ctx.recorder.record(
            FellBackToSequential(
                run_id=ctx.run_id,
                batch_id=batch.batch_id,
                reason="; ".join(outcome.errors),
                task_ids=[t.id for t in tasks],
            )
        )
        results = []
        for task in tasks:
            if ctx.stopping:
                break
            try:
                worktree = await self.provision(batch.batch_id, task, tip)
            except (GitError, WorktreeError, OSError) as exc:
                outcome.left_out[task.id] = f"no worktree could be created: {exc}"
                outcome.unprepared.append(task.id)
                continue
            results.append(await self.attempts(batch.batch_id, task, worktree, tip, outcome))
        return results

    async def provision(self, batch_id: int, task: Task, base: str) -> Worktree:
        """A fresh worktree for the task's next attempt, on `base`, recorded."""
        async with self._provisioning:
            worktree, created = await self._make(batch_id, task, base)
            await self.ctx.recorder.record(created)
            return worktree

    async def _make(self, batch_id: int, task: Task, base: str) -> tuple[Worktree, RunEvent]:
        """The worktree of the task's next attempt (`_provisioning` held), not recorded yet."""
        attempt = (self.ctx.recorder.state.tasks[task.id].attempt or 0) + 1
        if attempt > 1:
            await self._release_branch(task.id)
        return await make_worktree(self.ctx, batch_id, task, attempt, base)

    async def attempts(
        self, batch_id: int, task: Task, worktree: Worktree, base: str, outcome: BatchOutcome
    ) -> AttemptResult:
        """The task's attempts, the first in `worktree`, each retry in a fresh one, until
        one does not fail or the plan's retries are spent."""
        retries_left = self.ctx.plan.retries
        while True:
            attempt = self.ctx.recorder.state.tasks[task.id].attempt or 1
            result = await run_attempt(
                self.ctx, batch_id, task, attempt, worktree, will_retry=retries_left > 0
            )
            if result.outcome is not Outcome.FAILED or retries_left == 0 or self.ctx.stopping:
                return result
            retries_left -= 1
            try:
                worktree = await self.provision(batch_id, task, base)
            except (GitError, WorktreeError, OSError) as exc:
                # The task waits for a retry that cannot run: the batch failed (resumable),
                # never a finished run with the task still pending.
                outcome.unprepared.append(task.id)
                return AttemptResult(
                    task.id,
                    attempt,
                    Outcome.FAILED,
                    None,
                    error=f"no worktree for the retry: {exc}",
                )

    async def _release_branch(self, task_id: str) -> None:
        """Detach the previous attempt's worktree so the task branch can move to a new one;
        its files and commits stay where they are."""
        branch = self.ctx.worktrees.task_branch(self.ctx.run_id, task_id)
        for worktree in list(self.ctx.live_worktrees.values()):
            if worktree.branch == branch:
                await self.ctx.git.run("checkout", "--quiet", "--detach", cwd=worktree.path)
                detached = Worktree(worktree.path, None, worktree.worktree_id, worktree.base_commit)
                self.ctx.live_worktrees[worktree.worktree_id] = detached

    # -- conflicts: the sequential fallback ------------------------------------------------

    async def _rerun_conflicted(
        self, batch: Batch, conflicted: dict[str, tuple[str, ...]], outcome: BatchOutcome
    ) -> None:
        ctx = self.ctx
        names = ", ".join(conflicted)
        await ctx.recorder.record(
            FellBackToSequential(
                run_id=ctx.run_id,
                batch_id=batch.batch_id,
                reason=f"merge conflicts ({names}): resolving or re-running them one by one"
                " on the new tip",
                task_ids=list(conflicted),
            )
        )
        for task_id in conflicted:
            if ctx.stopping:
                outcome.status = BatchEnd.STOPPED
                return
            task = ctx.plan.task(task_id)
            if can_resolve(ctx, task) and await self._resolved(
                batch, task, conflicted[task_id], outcome
            ):
                continue
            if ctx.stopping:
                outcome.status = BatchEnd.STOPPED
                return
            if ctx.recorder.state.tasks[task_id].status != TaskStatus.RERUN:
                await ctx.recorder.record(
                    TaskRequeued(
                        run_id=ctx.run_id,
                        batch_id=batch.batch_id,
                        task_id=task_id,
                        reason="merge conflict: re-run on the new tip",
                    )
                )
            try:
                worktree = await self.provision(batch.batch_id, task, outcome.tip)
            except (GitError, WorktreeError, OSError) as exc:
                outcome.left_out[task_id] = f"no worktree for the re-run: {exc}"
                outcome.unprepared.append(task_id)  # it never ran: the batch failed
                continue
            result = await self.attempts(batch.batch_id, task, worktree, outcome.tip, outcome)
            if ctx.stopping:
                outcome.status = BatchEnd.STOPPED
                return
            if result.outcome is not Outcome.SUCCEEDED or result.worktree is None:
                outcome.left_out[task_id] = result.error
                continue
            await self._validate_one(batch, task_id, result.worktree, result.commit, outcome)

    async def _resolved(
        self, batch: Batch, task: Task, files: tuple[str, ...], outcome: BatchOutcome
    ) -> bool:
        """The task's own agent resolved its conflict and the result was validated (landed,
        ejected or still conflicting: decided either way). False: re-run it instead."""
        resolution = await resolve_conflict(
            self.ctx, batch.batch_id, task, outcome.tip, files, self.provision
        )
        if resolution.commit is None or resolution.worktree is None or self.ctx.stopping:
            return False
        await self._validate_one(batch, task.id, resolution.worktree, resolution.commit, outcome)
        return True

    async def _validate_one(
        self,
        batch: Batch,
        task_id: str,
        worktree: Worktree,
        commit: str | None,
        outcome: BatchOutcome,
    ) -> None:
        merged = await self.validator.validate(
            batch.batch_id, outcome.tip, [Candidate(task_id, worktree.worktree_id, commit)]
        )
        if merged.stopped:
            outcome.status = BatchEnd.STOPPED
            return
        outcome.tip = merged.tip
        outcome.landed += merged.merged
        if task_id in merged.conflicted:
            files = ", ".join(merged.conflicted[task_id])
            outcome.left_out[task_id] = f"still conflicts on the new tip ({files})"
        if task_id in merged.ejected:
            outcome.left_out[task_id] = "its branch broke the tests (culprit)"


def carried_result(ctx: RunContext, task_id: str) -> AttemptResult:
    """A finished task's last attempt as it stands, carried to a merge without running."""
    task = ctx.recorder.state.tasks[task_id]
    worktree = ctx.live_worktrees.get(task.worktree_id or "")
    return AttemptResult(task_id, task.attempt or 1, Outcome.SUCCEEDED, worktree, task.commit)
