"""A test verdict, and what the domain decides from it: whether a commit may land where the
tests were before (`no_worse`), which tests a commit broke (`newly_failing`), and the event
that records the verdict (`verdict_event`). Pure: execution runs the tests and reports."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypedDict

from plait.domain.events import MAX_TEST_IDS, BaselineTested, TestsFailed, TestsPassed
from plait.domain.plan.model import Plan
from plait.domain.run import RunState


@dataclass(frozen=True)
class TestRun:
    commit: str
    passed: bool
    exit_code: int | None
    duration: float
    output_tail: str
    timed_out: bool = False
    # Why the tests could not run at all (a setup failed, the command was not found), or
    # why their verdict cannot be trusted (they read the user's checkout).
    problem: str = ""
    failed_tests: frozenset[str] | None = None  # from the JUnit report; None without one
    setup: str = ""  # "ran" or "reused"; "" when the plan has no setup
    outside_reads: tuple[str, ...] = ()
    log_path: str = ""  # the whole output of the test command
    __test__ = False  # not a pytest test class


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


def verdict_event(
    run_id: str, batch_id: int, command: str, verdict: TestRun
) -> TestsPassed | TestsFailed:
    """The event that records a verdict on one of the batch's commits."""
    common: _VerdictFields = {
        "run_id": run_id,
        "batch_id": batch_id,
        "commit": verdict.commit,
        "command": command,
        "exit_code": verdict.exit_code,
        "duration": verdict.duration,
        "output_tail": verdict.output_tail,
        "setup": verdict.setup,
        "log_path": verdict.log_path,
    }
    if verdict.passed:
        return TestsPassed(**common)
    failed = sorted(verdict.failed_tests or ())
    return TestsFailed(
        **common,
        timed_out=verdict.timed_out,
        failed_tests=failed[:MAX_TEST_IDS],
        failed_count=None if verdict.failed_tests is None else len(failed),
        problem=verdict.problem,
    )


def baseline(state: RunState, plan: Plan, verdict: TestRun) -> tuple[BaselineTested, str | None]:
    """The baseline's event, and why the run is refused (None: it may go on). A problem
    (the tests could not run, or read the user's checkout) refuses it whatever
    `allow_red_base` says; red tests refuse it unless the plan allows a red base."""
    allowed = not verdict.problem and (verdict.passed or plan.allow_red_base)
    failed = sorted(verdict.failed_tests or ())
    tested = BaselineTested(
        run_id=state.run_id,
        command=plan.test_command or "",
        passed=verdict.passed,
        exit_code=verdict.exit_code,
        output_tail=verdict.output_tail,
        allowed=allowed,
        timed_out=verdict.timed_out,
        failed_tests=failed[:MAX_TEST_IDS],
        failed_count=None if verdict.failed_tests is None else len(failed),
        problem=verdict.problem,
        outside_reads=verdict.outside_reads,
        setup=verdict.setup,
        duration=verdict.duration,
        log_path=verdict.log_path,
    )
    if allowed:
        return tested, None
    if verdict.problem:
        return tested, f"refused before any task ran: {verdict.problem}"
    base = (state.base_commit or "")[:12]
    return tested, (
        f"the tests already fail on the base commit {base} before any task ran; "
        "fix them first or set allow_red_base: true"
    )
