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

from plait.domain.describe import gist
from plait.domain.events import (
    BatchCompleted,
    BatchFailed,
    BatchStarted,
    FellBackToSequential,
    TaskRequeued,
    WorkKept,
    WorktreeRemoved,
)
from plait.domain.plan.model import Batch, OnTaskFailure, Task
from plait.domain.statuses import TASK_FAILURE, TaskStatus
from plait.execution.git.cli import GitError
from plait.execution.run.conflict_resolution import can_resolve, resolve_conflict
from plait.execution.run.context import RunContext
from plait.execution.run.merge_validator import Candidate, MergeValidator
from plait.execution.run.task_runner import (
    AttemptResult,
    Outcome,
    TaskIds,
    keep_work,
    kept_ref,
    prepare_worktree,
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

    async def execute(self, batch: Batch, tip: str) -> BatchOutcome:
        ctx, started = self.ctx, time.monotonic()
        await ctx.recorder.record(
            BatchStarted(
                run_id=ctx.run_id,
                batch_id=batch.batch_id,
                task_ids=batch.task_ids,
                can_parallel=batch.can_parallel,
            )
        )
        outcome = BatchOutcome(status=BatchEnd.COMPLETED, tip=tip)
        results = await self._run_tasks(batch, tip, outcome)
        if ctx.stopping:
            outcome.status = BatchEnd.STOPPED
            return outcome
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
        await self._clean_up(batch, outcome)
        duration = time.monotonic() - started
        # A task that never got a worktree (a full disk, a git failure) did not run: that is
        # a failure of the batch, resumable, not a task quietly left out of a completed run.
        stops = ctx.plan.on_task_failure is OnTaskFailure.STOP
        failed = [
            t
            for t in outcome.left_out
            if (stops and _is_failure(ctx, t)) or t in outcome.unprepared
        ]
        if failed:
            outcome.status = BatchEnd.FAILED
            outcome.errors = [f"task {t!r}: {gist(outcome.left_out[t])}" for t in failed]
            await ctx.recorder.record(
                BatchFailed(
                    run_id=ctx.run_id,
                    batch_id=batch.batch_id,
                    merge_status="task_failed",
                    errors=outcome.errors,
                    duration=duration,
                )
            )
        else:
            status = "success" if not outcome.left_out else "partial"
            await ctx.recorder.record(
                BatchCompleted(
                    run_id=ctx.run_id,
                    batch_id=batch.batch_id,
                    merge_status=status,
                    duration=duration,
                )
            )
        return outcome

    # -- running tasks -------------------------------------------------------------------

    async def _run_tasks(
        self, batch: Batch, tip: str, outcome: BatchOutcome
    ) -> list[AttemptResult]:
        ctx = self.ctx
        tasks, carried = await self._resume_aware(batch)
        # Worktrees first, one at a time: git's worktree administration races with commits
        # made by tasks already running in other worktrees of the same repository.
        ready: list[tuple[Task, Worktree]] = []
        failed_to_prepare: list[Task] = []
        for task in tasks:
            try:
                ready.append((task, await self._provision(batch.batch_id, task, tip)))
            except (GitError, WorktreeError, OSError) as exc:
                failed_to_prepare.append(task)
                outcome.errors.append(f"task {task.id!r}: worktree: {exc}")
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
                return await self._attempts(batch.batch_id, task, worktree, tip)

        # A TaskGroup, not gather: if recording fails (the store is gone for good), the
        # sibling tasks are cancelled, which kills their process groups.
        async with asyncio.TaskGroup() as group:
            running = [group.create_task(one(t, w)) for t, w in ready]
        results = carried + [r.result() for r in running]
        if failed_to_prepare and not ctx.stopping:
            results += await self._fall_back(batch, failed_to_prepare, tip, outcome)
        return results

    async def _resume_aware(self, batch: Batch) -> tuple[list[Task], list[AttemptResult]]:
        """Which of the batch's tasks must run. On a resumed run, a task whose branch is
        finished is carried to the merge as it is, and one that failed, conflicted or was
        ejected is queued to run again."""
        ctx = self.ctx
        to_run: list[Task] = []
        carried: list[AttemptResult] = []
        for task_id in batch.task_ids:
            state = ctx.recorder.state.tasks[task_id]
            if state.status in (
                TaskStatus.LANDED, TaskStatus.EJECTED, TaskStatus.KEPT, TaskStatus.SKIPPED,
            ):  # fmt: skip
                continue  # landed already, left out for good, or not to be run
            if state.status == TaskStatus.SUCCEEDED and state.worktree_id:
                worktree = ctx.live_worktrees.get(state.worktree_id)
                carried.append(
                    AttemptResult(
                        task_id, state.attempt or 1, Outcome.SUCCEEDED, worktree, state.commit
                    )
                )
                continue
            if state.status in (TaskStatus.FAILED, TaskStatus.CONFLICTED, TaskStatus.NO_CHANGE):
                await ctx.recorder.record(
                    TaskRequeued(
                        run_id=ctx.run_id,
                        batch_id=batch.batch_id,
                        task_id=task_id,
                        reason="the run was resumed",
                    )
                )
            to_run.append(ctx.plan.task(task_id))
        return to_run, carried

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
                worktree = await self._provision(batch.batch_id, task, tip)
            except (GitError, WorktreeError, OSError) as exc:
                outcome.left_out[task.id] = f"no worktree could be created: {exc}"
                outcome.unprepared.append(task.id)
                continue
            results.append(await self._attempts(batch.batch_id, task, worktree, tip))
        return results

    async def _provision(self, batch_id: int, task: Task, base: str) -> Worktree:
        state = self.ctx.recorder.state.tasks[task.id]
        attempt = (state.attempt or 0) + 1
        if attempt > 1:
            await self._release_branch(task.id)
        return await prepare_worktree(self.ctx, batch_id, task, attempt, base)

    async def _attempts(
        self, batch_id: int, task: Task, worktree: Worktree, base: str
    ) -> AttemptResult:
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
                worktree = await self._provision(batch_id, task, base)
            except (GitError, WorktreeError, OSError) as exc:
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
                worktree = await self._provision(batch.batch_id, task, outcome.tip)
            except (GitError, WorktreeError, OSError) as exc:
                outcome.left_out[task_id] = f"no worktree for the re-run: {exc}"
                outcome.unprepared.append(task_id)  # it never ran: the batch failed
                continue
            result = await self._attempts(batch.batch_id, task, worktree, outcome.tip)
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
            self.ctx, batch.batch_id, task, outcome.tip, files, self._provision
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

    # -- cleanup ---------------------------------------------------------------------------

    async def _dispose(self, worktree: Worktree, *, delete_branch: bool) -> None:
        """A landed task's worktree: back to the pool, or removed."""
        pool = self.ctx.pool
        if pool is not None and worktree.path.parent == await pool.directory():
            try:
                await pool.release(worktree)  # KEPT only if it holds an unreachable commit
            except WorktreeError:
                # Not leased from this pool (left by a process that died): remove it.
                await self.ctx.worktrees.remove(worktree, delete_branch=delete_branch)
                return
            if delete_branch and worktree.branch:
                ref = f"refs/heads/{worktree.branch}"
                await self.ctx.git.run("update-ref", "-d", ref, check=False)
            return
        await self.ctx.worktrees.remove(worktree, delete_branch=delete_branch)

    async def _keep_earlier(self, batch_id: int, task_id: str, worktree: Worktree) -> None:
        """An earlier attempt's worktree, about to go: its work is kept first, unless it
        was (a failed or stopped attempt keeps its own; one a crash interrupted did not)."""
        _, _, number = worktree.worktree_id.rpartition(".")
        if not number.isdigit():
            return
        ids: TaskIds = {
            "run_id": self.ctx.run_id,
            "batch_id": batch_id,
            "task_id": task_id,
            "worktree_id": worktree.worktree_id,
            "attempt": int(number),
        }
        if await self.ctx.git.ref_target(kept_ref(ids)) is None:
            await keep_work(self.ctx, ids, worktree, "an earlier attempt, interrupted")

    async def _clean_up(self, batch: Batch, outcome: BatchOutcome) -> None:
        """Remove what landed; keep (and record) every worktree and branch that did not."""
        ctx = self.ctx
        for task_id in batch.task_ids:
            branch = ctx.worktrees.task_branch(ctx.run_id, task_id)
            mine = [
                w
                for w in ctx.live_worktrees.values()
                if w.worktree_id.startswith(f"{ctx.run_id}/{task_id}.")
            ]
            status = ctx.recorder.state.tasks[task_id].status
            if status in (TaskStatus.NO_CHANGE, TaskStatus.LANDED):
                # Landed work, or none at all (no change): nothing here is worth keeping.
                current = ctx.recorder.state.tasks[task_id].worktree_id
                for worktree in sorted(mine, key=lambda w: w.worktree_id != current):
                    if worktree.worktree_id != current:
                        await self._keep_earlier(batch.batch_id, task_id, worktree)
                    await self._dispose(worktree, delete_branch=worktree.branch == branch)
                    ctx.live_worktrees.pop(worktree.worktree_id, None)
                    await ctx.recorder.record(
                        WorktreeRemoved(
                            run_id=ctx.run_id,
                            task_id=task_id,
                            worktree_id=worktree.worktree_id,
                            batch_id=batch.batch_id,
                        )
                    )
            elif task_id in outcome.left_out and not _kept_already(ctx, task_id):
                await ctx.recorder.record(
                    WorkKept(
                        run_id=ctx.run_id,
                        task_id=task_id,
                        branch=branch,
                        reason=outcome.left_out[task_id][:500],
                        worktree_id=ctx.recorder.state.tasks[task_id].worktree_id,
                        batch_id=batch.batch_id,
                    )
                )


def _kept_already(ctx: RunContext, task_id: str) -> bool:
    """A failed attempt that recorded its own WorkKept (its work at its kept ref)."""
    task = ctx.recorder.state.tasks[task_id]
    mine = f"refs/plait/kept/{ctx.run_id}/{task_id}/{task.attempt or 1}"
    return task.status == TaskStatus.FAILED and task.kept_ref == mine


def _is_failure(ctx: RunContext, task_id: str) -> bool:
    """A task whose own command failed, or that did not do its job (changed nothing where
    that is not allowed); not a conflict or a culprit."""
    return ctx.recorder.state.tasks[task_id].status in TASK_FAILURE
