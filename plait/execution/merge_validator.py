"""Merges a batch's branches onto the integration tip, tests the exact merged commit, finds
a culprit by bisecting the merge chain, and lands the green result with a compare-and-swap.

No working tree is touched to merge (`git merge-tree --write-tree` + `commit-tree`), so the
user's checkout is never involved.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from plait.domain.events import (
    BatchLanded,
    BranchMerged,
    CulpritFound,
    MergeConflicted,
    MergeStarted,
    RunEvent,
    TestsFailed,
    TestsFlaky,
    TestsPassed,
)
from plait.execution.context import RunContext
from plait.execution.integration_tests import IntegrationTester, TestRun
from plait.execution.merging import ChainResult, merge_chain, update_ref_cas


class LandingRaced(Exception):
    """The run's integration ref moved under us: another process is driving this run."""


@dataclass(frozen=True)
class Candidate:
    task_id: str
    worktree_id: str
    commit: str | None  # None: the task changed nothing


@dataclass
class MergeOutcome:
    tip: str  # the integration tip after landing
    merged: list[str] = field(default_factory=list)
    conflicted: dict[str, tuple[str, ...]] = field(default_factory=dict)
    ejected: list[str] = field(default_factory=list)
    stopped: bool = False


class MergeValidator:
    def __init__(self, ctx: RunContext, tester: IntegrationTester) -> None:
        self.ctx = ctx
        self.tester = tester
        self._last_failure: TestRun | None = None  # the latest red test run

    async def validate(
        self, batch_id: int, onto: str, candidates: Sequence[Candidate]
    ) -> MergeOutcome:
        record = self.ctx.recorder.record
        run_id = self.ctx.run_id
        outcome = MergeOutcome(tip=onto)
        await record(MergeStarted(run_id=run_id, batch_id=batch_id, onto=onto))
        worktree_of = {c.task_id: c.worktree_id for c in candidates}
        for c in candidates:
            if c.commit is None:  # nothing to merge: it is in as it is
                await record(
                    BranchMerged(
                        run_id=run_id,
                        batch_id=batch_id,
                        task_id=c.task_id,
                        worktree_id=c.worktree_id,
                        merge_commit=onto,
                    )
                )
                outcome.merged.append(c.task_id)
        branches = [(c.task_id, c.commit) for c in candidates if c.commit is not None]
        chain = await self._merge(batch_id, onto, branches, worktree_of, outcome)
        while self.tester.command is not None and chain.steps:
            verdict = await self._test(batch_id, chain.tip)
            if verdict is None:
                outcome.stopped = True
                return outcome
            if verdict:
                break
            old_failure = await self._red_before(batch_id, chain.onto)
            if old_failure is None:
                outcome.stopped = True
                return outcome
            if old_failure:
                break  # the tests were red before this batch too: not a failure it caused
            culprit_at = await self._bisect(batch_id, chain)
            if culprit_at is None:
                outcome.stopped = True
                return outcome
            culprit = chain.steps[culprit_at]
            failure = self._last_failure
            await record(
                CulpritFound(
                    run_id=run_id,
                    batch_id=batch_id,
                    task_id=culprit.task_id,
                    output_tail=failure.output_tail if failure else "",
                    failing_tests=failure.failing_tests if failure else (),
                )
            )
            outcome.ejected.append(culprit.task_id)
            outcome.merged.remove(culprit.task_id)
            green = chain.tip_after(culprit_at)
            rest = [(s.task_id, s.commit) for s in chain.steps[culprit_at + 1 :]]
            for task_id, _ in rest:
                outcome.merged.remove(task_id)
            await record(MergeStarted(run_id=run_id, batch_id=batch_id, onto=green))
            chain = await self._merge(batch_id, green, rest, worktree_of, outcome)
            if not chain.steps:
                break
        await self._land(batch_id, onto, chain.tip)
        outcome.tip = chain.tip
        return outcome

    async def _merge(
        self,
        batch_id: int,
        onto: str,
        branches: list[tuple[str, str]],
        worktree_of: dict[str, str],
        outcome: MergeOutcome,
    ) -> ChainResult:
        chain = await merge_chain(self.ctx.git, onto, branches)
        events: list[RunEvent] = []
        for step in chain.steps:
            events.append(
                BranchMerged(
                    run_id=self.ctx.run_id,
                    batch_id=batch_id,
                    task_id=step.task_id,
                    worktree_id=worktree_of[step.task_id],
                    merge_commit=step.merge_commit,
                )
            )
            outcome.merged.append(step.task_id)
        for conflict in chain.conflicts:
            events.append(
                MergeConflicted(
                    run_id=self.ctx.run_id,
                    batch_id=batch_id,
                    task_id=conflict.task_id,
                    worktree_id=worktree_of[conflict.task_id],
                    files=conflict.files,
                )
            )
            outcome.conflicted[conflict.task_id] = conflict.files
        await self.ctx.recorder.record(*events)  # the whole chain in one append
        return chain

    async def _test(self, batch_id: int, commit: str) -> bool | None:
        """True if green (a red run that passes on a re-run is flaky: green), None if stopped."""
        first = await self._run_and_record(batch_id, commit)
        if first is None:
            return None
        if first.passed:
            return True
        again = await self.tester.run(commit)
        if again is None:
            return None
        if again.passed:
            await self.ctx.recorder.record(
                TestsFlaky(
                    run_id=self.ctx.run_id,
                    batch_id=batch_id,
                    commit=commit,
                    command=self.tester.command or "",
                    output_tail=first.output_tail,
                    log_path=first.log_path,
                    failing_tests=first.failing_tests,
                )
            )
            return True
        await self._record(batch_id, again)
        return False

    async def _red_before(self, batch_id: int, onto: str) -> bool | None:
        """With an allowed red base, only failures the tip before this batch does not show
        count; an exit status cannot tell tests apart, so a red `onto` blames nobody.
        False on a green base (nothing to compare), None if stopped."""
        if self.ctx.recorder.state.baseline_passed is not False:
            return False
        verdict = await self._run_and_record(batch_id, onto)
        return None if verdict is None else not verdict.passed

    async def _bisect(self, batch_id: int, chain: ChainResult) -> int | None:
        """Index of the first step whose prefix fails. Prefix 0 (the tip before this batch)
        is green: the baseline or the previous landing was tested."""
        green, red = 0, len(chain.steps)
        while red - green > 1:
            middle = (green + red) // 2
            verdict = await self._run_and_record(batch_id, chain.tip_after(middle))
            if verdict is None:
                return None
            if verdict.passed:
                green = middle
            else:
                red = middle
        return red - 1

    async def _run_and_record(self, batch_id: int, commit: str) -> TestRun | None:
        verdict = await self.tester.run(commit)
        if verdict is not None:
            await self._record(batch_id, verdict)
        return verdict

    async def _record(self, batch_id: int, verdict: TestRun) -> None:
        kind = TestsPassed if verdict.passed else TestsFailed
        if not verdict.passed:
            self._last_failure = verdict
        await self.ctx.recorder.record(
            kind(
                run_id=self.ctx.run_id,
                batch_id=batch_id,
                commit=verdict.commit,
                command=self.tester.command or "",
                exit_code=verdict.exit_code,
                duration=verdict.duration,
                output_tail=verdict.output_tail,
                log_path=verdict.log_path,
                failing_tests=verdict.failing_tests,
            )
        )

    async def _land(self, batch_id: int, before: str, after: str) -> None:
        if after != before and not await update_ref_cas(
            self.ctx.git, self.ctx.result_ref, after, before
        ):
            raise LandingRaced(f"{self.ctx.result_ref} moved while batch {batch_id} was merged")
        await self.ctx.recorder.record(
            BatchLanded(run_id=self.ctx.run_id, batch_id=batch_id, before=before, after=after)
        )
