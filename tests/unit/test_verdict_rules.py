"""Which verdicts may land where, and which tests a JUnit report says failed."""

from __future__ import annotations

from pathlib import Path

import pytest

from plait.domain.verdicts import TestRun, newly_failing, no_worse
from plait.execution.run.junit import read_report


def verdict(
    passed: bool = False,
    exit_code: int | None = 1,
    failed: set[str] | None = None,
    *,
    timed_out: bool = False,
    problem: str = "",
) -> TestRun:
    return TestRun(
        commit="c",
        passed=passed,
        exit_code=0 if passed else exit_code,
        duration=1.0,
        output_tail="",
        timed_out=timed_out,
        problem=problem,
        failed_tests=None if failed is None else frozenset(failed),
    )


GREEN = verdict(passed=True, failed=set())


def test_a_green_run_lands_anywhere() -> None:
    assert no_worse(GREEN, None)
    assert no_worse(GREEN, verdict(failed={"old"}))


def test_on_a_green_base_nothing_red_lands() -> None:
    assert not no_worse(verdict(failed={"old"}), None)
    assert not no_worse(verdict(failed={"old"}), GREEN)


def test_on_a_red_base_a_run_failing_only_old_tests_lands() -> None:
    assert no_worse(verdict(failed={"old"}), verdict(failed={"old", "older"}))


def test_on_a_red_base_a_run_failing_a_new_test_does_not_land() -> None:
    assert not no_worse(verdict(failed={"old", "new"}), verdict(failed={"old"}))


def test_without_reports_the_exit_status_decides() -> None:
    assert no_worse(verdict(exit_code=1), verdict(exit_code=1))
    assert not no_worse(verdict(exit_code=2), verdict(exit_code=1))
    assert no_worse(verdict(exit_code=1), verdict(exit_code=1, failed={"old"}))


@pytest.mark.parametrize(
    "now",
    [
        verdict(exit_code=0, failed=set(), timed_out=True),
        verdict(exit_code=127, problem="the test command could not run (exit 127: not found)"),
        verdict(exit_code=1, problem="test_setup_command failed"),
    ],
    ids=["timed out exit 0", "not found", "setup failed"],
)
def test_a_run_that_timed_out_or_could_not_run_never_lands_on_a_red_base(now: TestRun) -> None:
    assert not no_worse(now, verdict(exit_code=now.exit_code, failed=None))


def test_a_reference_that_timed_out_allows_nothing_red() -> None:
    assert not no_worse(verdict(exit_code=1), verdict(exit_code=1, timed_out=True))


def test_the_tests_a_culprit_broke_are_those_failing_now_and_not_before() -> None:
    assert newly_failing(verdict(failed={"b", "a", "old"}), verdict(failed={"old"})) == ("a", "b")
    assert newly_failing(verdict(failed={"a"}), None) == ("a",)
    assert newly_failing(verdict(failed={"a"}), GREEN) == ("a",)
    assert newly_failing(verdict(failed=None), None) == ()
    assert newly_failing(verdict(failed={"a"}), verdict(failed=None)) == ()


PYTEST_REPORT = """<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest" errors="1" failures="1" skipped="1" tests="4">
<testcase classname="tests.test_app" name="test_add" time="0.001"/>
<testcase classname="tests.test_app" name="test_sub[1-2]" time="0.001">
  <failure message="assert 3 == 1">tests/test_app.py:9: AssertionError</failure>
</testcase>
<testcase classname="tests.test_app" name="test_skip" time="0"><skipped message="no"/></testcase>
<testcase classname="" name="tests.test_broken" time="0">
  <error message="collection failure">ImportError</error>
</testcase>
</testsuite></testsuites>
"""


def test_a_pytest_report_gives_its_failures_and_errors_by_id(tmp_path: Path) -> None:
    path = tmp_path / "report.xml"
    path.write_text(PYTEST_REPORT)
    report = read_report(path)
    assert report.failed == frozenset({"tests.test_app::test_sub[1-2]", "tests.test_broken"})
    assert report.note == ""


def test_a_missing_report_is_no_report(tmp_path: Path) -> None:
    assert read_report(tmp_path / "absent.xml").failed is None


def test_an_unreadable_report_is_no_report_and_says_why(tmp_path: Path) -> None:
    path = tmp_path / "report.xml"
    path.write_text("<testsuite><testcase name='x'>")
    report = read_report(path)
    assert report.failed is None
    assert "unreadable" in report.note


def test_a_report_cannot_expand_entities_into_a_bomb(tmp_path: Path) -> None:
    # "Billion laughs": ten levels of ten references each; expat refuses the amplification.
    levels = ['<!ENTITY lol0 "lol">'] + [
        f'<!ENTITY lol{n} "{f"&lol{n - 1};" * 10}">' for n in range(1, 10)
    ]
    path = tmp_path / "report.xml"
    path.write_text(
        f"<!DOCTYPE testsuite [{''.join(levels)}]>"
        "<testsuite><testcase name='&lol9;'><failure/></testcase></testsuite>"
    )
    report = read_report(path)
    assert report.failed is None
    assert "unreadable" in report.note
