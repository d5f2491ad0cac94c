"""Merges a batch's branches onto the integration tip, tests the exact merged commit, finds
a culprit by bisecting the merge chain, and lands the green result with a compare-and-swap.

No working tree is touched to merge (`git merge-tree --write-tree` + `commit-tree`), so the
user's checkout is never involved.

On a red base the run was allowed to start on (`allow_red_base`), a tested commit is
acceptable when it is no worse than the tip the batch started from (`no_worse`): with JUnit
reports on both, when every test failing now failed there too; without, when both ran and
exited alike. A run that timed out or could not run is never acceptable.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TypedDict

from plait.domain.events import (
    MAX_TEST_IDS,
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
from plait.eventstore.anchor import head_ref_for
from plait.execution.git.anchor import anchor_chain
from plait.execution.git.cli import GitError
from plait.execution.git.merging import ChainResult, merge_chain, update_ref_cas
from plait.execution.run.context import RunContext
from plait.execution.run.integration_tests import IntegrationTester, TestRun

log = logging.getLogger(__name__)


class LandingRaced(Exception):
    """The run's integration ref moved under us: another process is driving this run."""


class _VerdictFields(TypedDict):
    run_id: str
    batch_id: int
    commit: str
    command: str
    exit_code: int | None
    duration: float
    output_tail: str
    setup: str
    log_path: str


class _Stopped(Exception):
    """The run was stopped while a test command ran."""


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


def no_worse(now: TestRun, before: TestRun | None) -> bool:
    """Whether `now` may land where the tests were `before` (None: green, nothing to allow)."""
    if now.passed:
        return True
    if before is None or before.passed:
        return False
    if now.problem or now.timed_out or before.problem or before.timed_out:
        return False
    if now.failed_tests is not None and before.failed_tests is not None:
        return now.failed_tests <= before.failed_tests
    return now.exit_code == before.exit_code


def newly_failing(now: TestRun, before: TestRun | None) -> tuple[str, ...]:
    """The tests that fail in `now` and did not `before` (None or green: none did), as far
    as JUnit reports tell."""
    if now.failed_tests is None:
        return ()
    if before is None or before.passed:
        return tuple(sorted(now.failed_tests))
    if before.failed_tests is None:
        return ()
    return tuple(sorted(now.failed_tests - before.failed_tests))


class MergeValidator:
    def __init__(self, ctx: RunContext, tester: IntegrationTester) -> None:
        self.ctx = ctx
        self.tester = tester

    async def validate(
        self, batch_id: int, onto: str, candidates: Sequence[Candidate]
    ) -> MergeOutcome:
        outcome = MergeOutcome(tip=onto)
        try:
            return await self._validate(batch_id, onto, candidates, outcome)
        except _Stopped:
            outcome.stopped = True
            return outcome

    async def _validate(
        self, batch_id: int, onto: str, candidates: Sequence[Candidate], outcome: MergeOutcome
    ) -> MergeOutcome:
        record = self.ctx.recorder.record
        run_id = self.ctx.run_id
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
            judged = await self._judge_tip(batch_id, chain.tip, onto)
            if judged is None:
                break  # green, or no worse than the tests were before this batch
            red, reference = judged
            culprit_at, broke, tail = await self._bisect(batch_id, chain, reference, red)
            culprit = chain.steps[culprit_at]
            await record(
                CulpritFound(
                    run_id=run_id,
                    batch_id=batch_id,
                    task_id=culprit.task_id,
                    output_tail=tail,
                    broke_tests=broke[:MAX_TEST_IDS],
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

    async def _reference(self, batch_id: int, onto: str) -> TestRun | None:
        """What the tests were on `onto` when a red base was allowed: the verdict a commit of
        this batch must be no worse than. None on a green base (the baseline or the previous
        landing was tested green): then only green lands."""
        if self.ctx.recorder.state.baseline_passed is not False:
            return None
        known = self.tester.verdicts.get(onto)
        return known if known is not None else await self._run_and_record(batch_id, onto)

    async def _judge_tip(
        self, batch_id: int, tip: str, onto: str
    ) -> tuple[TestRun, TestRun | None] | None:
        """None if `tip` may land; else its (confirmed) red verdict and what it was judged
        against. A red run that a re-run finds acceptable was flaky: reported, nobody
        blamed."""
        first = await self._run_and_record(batch_id, tip)
        if first.passed:
            return None
        reference = await self._reference(batch_id, onto)
        if no_worse(first, reference):
            return None
        again = await self._run(tip)
        if no_worse(again, reference):
            await self.ctx.recorder.record(
                TestsFlaky(
                    run_id=self.ctx.run_id,
                    batch_id=batch_id,
                    commit=tip,
                    command=self.tester.command or "",
                    output_tail=first.output_tail,
                    log_path=first.log_path,
                    failed_tests=sorted(first.failed_tests or ())[:MAX_TEST_IDS],
                )
            )
            return None
        await self._record(batch_id, again)
        return again, reference

    async def _bisect(
        self, batch_id: int, chain: ChainResult, reference: TestRun | None, red: TestRun
    ) -> tuple[int, tuple[str, ...], str]:
        """The index of the first step whose prefix is not acceptable, the tests it broke,
        and the output of the red run that shows it. Prefix 0 (the tip before this batch) is
        acceptable by definition: it was tested when it landed."""
        verdicts: dict[int, TestRun | None] = {0: reference, len(chain.steps): red}
        good, bad = 0, len(chain.steps)
        while bad - good > 1:
            middle = (good + bad) // 2
            verdict = await self._run_and_record(batch_id, chain.tip_after(middle))
            verdicts[middle] = verdict
            if no_worse(verdict, reference):
                good = middle
            else:
                bad = middle
        failing = verdicts[bad]
        assert failing is not None
        return bad - 1, newly_failing(failing, verdicts[good]), failing.output_tail

    async def _run(self, commit: str) -> TestRun:
        verdict = await self.tester.run(commit)
        if verdict is None:
            raise _Stopped
        return verdict

    async def _run_and_record(self, batch_id: int, commit: str) -> TestRun:
        verdict = await self._run(commit)
        await self._record(batch_id, verdict)
        return verdict

    async def _record(self, batch_id: int, verdict: TestRun) -> None:
        common: _VerdictFields = {
            "run_id": self.ctx.run_id,
            "batch_id": batch_id,
            "commit": verdict.commit,
            "command": self.tester.command or "",
            "exit_code": verdict.exit_code,
            "duration": verdict.duration,
            "output_tail": verdict.output_tail,
            "setup": verdict.setup,
            "log_path": verdict.log_path,
        }
        if verdict.passed:
            await self.ctx.recorder.record(TestsPassed(**common))
            return
        failed = sorted(verdict.failed_tests or ())
        await self.ctx.recorder.record(
            TestsFailed(
                **common,
                timed_out=verdict.timed_out,
                failed_tests=failed[:MAX_TEST_IDS],
                failed_count=None if verdict.failed_tests is None else len(failed),
                problem=verdict.problem,
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
        await _anchor_in_repository(self.ctx)


async def _anchor_in_repository(ctx: RunContext) -> None:
    """Keep the chain head the landing anchored in the repository too (git/anchor.py)."""
    head = ctx.recorder.last_head
    if head is None:
        return
    try:
        await anchor_chain(ctx.git, head_ref_for(ctx.recorder.store.url), head)
    except GitError as exc:  # the landing stands; the head file still anchors it
        log.warning("run %s: could not keep the chain head in the repository: %s", ctx.run_id, exc)
