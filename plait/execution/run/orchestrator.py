"""Drives one run from its RunCreated to its end: mode selection, the baseline test, every
batch in order, the final landing on the base branch, and cleanup.

A task that fails (after its retries) ends the run after its batch when the plan says
`on_task_failure: stop` (the default): that batch's green work lands on the run's result
branch first, and `plait land` lands it. With `land`, the run goes on. Either way a task
whose dependency did not land is skipped, with the reason.

Stop: no new task starts, running task process groups get SIGTERM then SIGKILL after the
grace period, and the run ends `stopped`, resumable. A resumed run replays its history,
skips what is done, and re-runs what was interrupted. A run resumed by `plait land` runs no
task: it lands its tested result.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from plait.domain.errors import DomainError
from plait.domain.events import (
    ExecutionModeSelected,
    RunFailed,
    RunStopped,
)
from plait.domain.plan.batching import plan_batches, select_mode
from plait.domain.plan.model import Batch, Schedule
from plait.domain.run.decide import batch_has_work, nothing_landed, run_completed
from plait.domain.run_actions import dependency_skips, land_skips
from plait.domain.statuses import ACTIVE_RUN, ENDED_RUN, RunStatus
from plait.domain.verdicts import baseline
from plait.eventstore import StoreError
from plait.execution.git.cli import GitError
from plait.execution.git.merging import LandOutcome, LandResult, land, merge_chain, update_ref_cas
from plait.execution.run.batch_executor import BatchEnd, BatchExecutor, BatchOutcome
from plait.execution.run.context import RunContext
from plait.execution.run.integration_tests import IntegrationTester
from plait.execution.run.merge_validator import LandingRaced, MergeValidator
from plait.execution.run.ready_queue import QueueOutcome, ReadyQueue
from plait.execution.run.recovery import interrupt_tasks
from plait.execution.worktrees.manager import WorktreeError

log = logging.getLogger(__name__)

# Failures of the environment (git, the filesystem, the store) end the run, resumable.
# Anything else is a bug and propagates.
# How often the base may move under a finishing run before plait leaves the result branch.
MAX_BASE_MOVES = 3
EXPECTED_FAILURES = (GitError, WorktreeError, LandingRaced, OSError, DomainError, StoreError)


def _first_expected(group: BaseExceptionGroup[BaseException]) -> BaseException:
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            return _first_expected(exc)
        if isinstance(exc, EXPECTED_FAILURES):
            return exc
    raise group


@dataclass(frozen=True)
class RunResult:
    run_id: str
    status: RunStatus  # landed | kept | succeeded | failed | stopped
    result_commit: str | None
    landed_on: str | None
    error: str | None


class RunDriver:
    def __init__(self, ctx: RunContext, project_id: str) -> None:
        self.ctx = ctx
        self.project_id = project_id
        self.tester = IntegrationTester(ctx)
        self.batches = BatchExecutor(ctx, MergeValidator(ctx, self.tester))

    async def drive(self) -> RunResult:
        ctx = self.ctx
        try:
            try:
                return await self._drive()
            except ExceptionGroup as group:  # from a batch's TaskGroup
                failure = _first_expected(group)
            except EXPECTED_FAILURES as exc:
                failure = exc
            ctx.stop.set()  # whatever still runs must stop: nobody would record it
            log.error("run %s failed: %s", ctx.run_id, failure, exc_info=failure)
            return await self._fail(f"{type(failure).__name__}: {failure}")
        finally:
            await self._close_tester()
            await self._end_on_project_stream()

    async def _close_tester(self) -> None:
        """The integration worktree is a scratch checkout: a resumed run makes it again, so
        a run that ends in any way leaves none behind."""
        try:
            await self.tester.close()
        except (GitError, WorktreeError, OSError) as exc:
            log.warning(
                "run %s: could not remove its integration worktree: %s", self.ctx.run_id, exc
            )

    async def _drive(self) -> RunResult:
        ctx = self.ctx
        state = ctx.recorder.state
        ready = state.schedule == Schedule.READY
        if state.status == RunStatus.PENDING:
            # A ready run has no batches before it runs: its mode follows the plan's levels.
            planned = list(plan_batches(ctx.plan)) if ready else self._batches()
            decision = select_mode(planned, ctx.plan.max_concurrency)
            reason = f"schedule ready: {decision.reason}" if ready else decision.reason
            await ctx.recorder.record(
                ExecutionModeSelected(
                    run_id=ctx.run_id, mode=decision.mode, reason=reason, schedule=state.schedule
                )
            )
        await self._ensure_result_ref()
        if state.land_requested:
            return await self._land_now()
        # A baseline that refused the run is taken again on resume: the user may have fixed
        # the environment, and nothing may run on a base that was never allowed.
        if not state.baseline_allowed and ctx.plan.test_command:
            verdict = await self._baseline()
            if verdict is not None:
                return verdict
        tip = await ctx.git.rev_parse(ctx.result_ref)
        if ready:
            queued = await ReadyQueue(ctx, self.batches).drive(tip)
            ended = await self._ended(queued, "once its running tasks landed")
            return ended or await self._finish(queued.tip)
        for batch in self._batches():
            if not batch_has_work(state, batch.batch_id):
                continue
            await ctx.recorder.record(*dependency_skips(state, batch.batch_id))
            outcome = await self.batches.execute(batch, tip)
            tip = outcome.tip
            ended = await self._ended(outcome, f"after batch {batch.batch_id}")
            if ended is not None:
                return ended
        return await self._finish(tip)

    async def _ended(self, outcome: BatchOutcome | QueueOutcome, when: str) -> RunResult | None:
        """The run's end when a batch (or the ready queue) stopped or failed; None: go on."""
        if outcome.status is BatchEnd.STOPPED:
            return await self._stopped()
        if outcome.status is not BatchEnd.FAILED:
            return None
        errors = "; ".join(outcome.errors) or "a task failed"
        if outcome.unprepared:
            return await self._fail(errors)
        return await self._fail(f"{errors}; the run stopped {when} (on_task_failure: stop)")

    def _batches(self) -> list[Batch]:
        state = self.ctx.recorder.state
        return [
            Batch(b.batch_id, tuple(b.task_ids), b.can_parallel)
            for b in (state.batches[k] for k in sorted(state.batches))
        ]

    async def _ensure_result_ref(self) -> None:
        ctx = self.ctx
        if await ctx.git.ref_target(ctx.result_ref) is None:
            base = ctx.recorder.state.base_commit or ""
            # Create-only: the all-zero old value refuses to overwrite an existing ref.
            await ctx.git.run("update-ref", ctx.result_ref, base, "0" * 40)

    async def _baseline(self) -> RunResult | None:
        """The tests on the base commit, before any task runs. It also proves the tests judge
        the integration worktree's files (the watch on the user's checkout), and that they
        can run at all: a problem there refuses the run, whatever `allow_red_base` says."""
        ctx = self.ctx
        base = ctx.recorder.state.base_commit or ""
        verdict = await self.tester.run(base, watch_checkout=True)
        if verdict is None:
            return await self._stopped()
        # The domain decides: the baseline's event, and the refusal when it is one.
        tested, refusal = baseline(ctx.recorder.state, ctx.plan, verdict)
        await ctx.recorder.record(tested)
        if refusal is None:
            return None
        # Nothing can land on a red base: drop the (still empty) result branch.
        await ctx.git.run("update-ref", "-d", ctx.result_ref, base, check=False)
        return await self._fail(refusal)

    async def _land_now(self) -> RunResult:
        """`plait land`: the tested result as it is, through the same landing as a run's end."""
        ctx = self.ctx
        state = ctx.recorder.state
        tip = await ctx.git.ref_target(ctx.result_ref)
        if tip is None or tip != state.result_commit:
            return await self._fail(
                f"{ctx.result_ref} is no longer the tested result {state.result_commit}"
                f" (it points at {tip or 'nothing'}): nothing was landed"
            )
        await ctx.recorder.record(*land_skips(state))
        return await self._finish(tip)

    async def _finish(self, tip: str) -> RunResult:
        ctx = self.ctx
        state = ctx.recorder.state
        base_branch, base = state.base_branch or "", state.base_commit or ""
        nothing = nothing_landed(state, tip)  # the domain: a failure, or a landing to try
        if nothing is not None:
            await self.tester.close()
            return await self._fail(nothing)
        landed_on, reason = base_branch, ""
        if tip != base:
            tip, landing = await self._land_on_base(base_branch, tip, base)
            if not landing.landed:
                landed_on, reason = ctx.result_ref.removeprefix("refs/heads/"), _why(landing)
        await self.tester.close()
        if landed_on == base_branch:
            await ctx.git.run("update-ref", "-d", ctx.result_ref, tip, check=False)
        await ctx.recorder.record(run_completed(state, tip, landed_on, reason))
        return self._result(landed_on=landed_on)

    async def _land_on_base(self, base_branch: str, tip: str, base: str) -> tuple[str, LandResult]:
        """Move the base branch to the run's result. If the user moved the base meanwhile,
        merge the result onto their new base, test that exact commit, and try again: their
        commits are never overwritten, and nothing untested lands."""
        ctx = self.ctx
        old, new = base, tip
        for _ in range(MAX_BASE_MOVES):
            landing = await land(ctx.git, base_branch, new, old)
            if landing.outcome is not LandOutcome.BASE_MOVED:
                return new, landing
            moved_to = await ctx.git.rev_parse(f"refs/heads/{base_branch}")
            if not await ctx.git.is_ancestor(old, moved_to):
                # Reset or rewritten: what the user dropped must not come back with a merge.
                detail = f"{moved_to[:12]} is not a descendant of {old[:12]}"
                return new, LandResult(LandOutcome.BASE_REWOUND, base_branch, new, None, detail)
            chain = await merge_chain(ctx.git, moved_to, [("run", new)])
            if chain.conflicts or not chain.steps:
                return new, landing
            if ctx.plan.test_command:
                verdict = await self.tester.run(chain.tip)
                if verdict is None or not verdict.passed:
                    return new, landing
            if not await update_ref_cas(ctx.git, ctx.result_ref, chain.tip, new):
                return new, landing
            old, new = moved_to, chain.tip
        return new, landing

    async def _stopped(self) -> RunResult:
        ctx = self.ctx
        await interrupt_tasks(ctx.recorder, "run stopped")
        reason = ctx.recorder.state.stop_reason or ""
        await ctx.recorder.record(RunStopped(run_id=ctx.run_id, reason=reason))
        return self._result()

    async def _fail(self, error: str) -> RunResult:
        """Record the failure; the result is what was stored (a deposed driver stores
        nothing: the run is another process's now, and this one just stops)."""
        ctx = self.ctx
        recorder = ctx.recorder
        if recorder.state.status in ACTIVE_RUN and not recorder.deposed:
            try:
                await recorder.record(RunFailed(run_id=ctx.run_id, error=error[:4000]))
            except (DomainError, StoreError):
                log.exception("could not record the failure of run %s", ctx.run_id)
        return self._result(error)

    def _result(self, error: str | None = None, landed_on: str | None = None) -> RunResult:
        """The run's result as its stored state says: a status it did not store, it lacks.
        `landed_on`: where the stored RunCompleted says the result is."""
        state = self.ctx.recorder.state
        status = state.status or RunStatus.FAILED
        if self.ctx.recorder.deposed:
            error = f"{error}; another process drives run {self.ctx.run_id} now"
        commit = state.landed_commit or state.result_commit
        return RunResult(self.ctx.run_id, status, commit, landed_on or state.landed_on, error)

    async def _end_on_project_stream(self) -> None:
        recorder = self.ctx.recorder
        status = recorder.state.status
        if status not in ENDED_RUN or recorder.deposed:
            return
        try:
            await recorder.end_run(self.project_id, status)
        except StoreError:
            log.exception("could not record the end of run %s", self.ctx.run_id)


def _why(landing: LandResult) -> str:
    """Why the result stays on the run's branch, in words a user can act on."""
    where = f" at {landing.worktree}" if landing.worktree else ""
    if landing.outcome is LandOutcome.CHECKOUT_DIRTY:
        return f"your {landing.branch} checkout{where} has local changes"
    if landing.outcome is LandOutcome.CHECKOUT_BLOCKED:
        return (
            f"landing would overwrite files in your {landing.branch} checkout{where} that git"
            f" does not track ({landing.detail}): move them away, then land"
        )
    if landing.outcome is LandOutcome.BASE_REWOUND:
        return (
            f"{landing.branch} was moved back or rewritten ({landing.detail}, the commit the"
            " run built on): plait does not merge onto it, which could bring back what you"
            " dropped; rebase the result yourself, or land it once the branch descends from it"
        )
    if landing.outcome is LandOutcome.CHECKOUT_FAILED:
        reason = (landing.detail.splitlines() or ["git failed"])[0]
        return f"git could not fast-forward your {landing.branch} checkout{where}: {reason}"
    return (
        f"{landing.branch} moved meanwhile, and the result merged onto it did not test green"
        " (or conflicted)"
    )
