"""Failing test names read from test runners' output, and one line of essentials per event."""

from __future__ import annotations

from typing import Any

import pytest

from plait.domain.describe import describe, gist
from plait.domain.failures import failing_tests
from plait.domain.run import RunState

PYTEST = """\
============================= test session starts ==============================
tests/test_ops.py F.                                                     [100%]
=================================== FAILURES ===================================
___________________________ AddTest.test_add_sums ______________________________
E   AssertionError: -1 != 5
=========================== short test summary info ============================
FAILED tests/test_ops.py::AddTest::test_add_sums - AssertionError: -1 != 5
ERROR tests/test_db.py::test_connects - OSError: refused
1 failed, 1 passed, 1 error in 0.03s
"""
UNITTEST = """\
F.
======================================================================
FAIL: test_add (tests.test_ops.AddTest.test_add)
----------------------------------------------------------------------
AssertionError: -1 != 5
======================================================================
ERROR: test_div (tests.test_ops.DivTest.test_div)
"""


@pytest.mark.parametrize(
    ("output", "names"),
    [
        (PYTEST, ["tests/test_ops.py::AddTest::test_add_sums", "tests/test_db.py::test_connects"]),
        (
            UNITTEST,
            [
                "test_add (tests.test_ops.AddTest.test_add)",
                "test_div (tests.test_ops.DivTest.test_div)",
            ],
        ),
        ("--- FAIL: TestAdd (0.00s)\n--- PASS: TestSub (0.00s)\n", ["TestAdd"]),
        ("test ops::adds ... FAILED\ntest ops::subs ... ok\n", ["ops::adds"]),
        ("  \u2713 subtracts\n  \u2715 adds two numbers (3 ms)\n", ["adds two numbers"]),
        ("\x1b[31mFAILED\x1b[0m tests/t.py::test_x - boom\n", ["tests/t.py::test_x"]),
        ("make: *** [test] Error 1\n", []),
    ],
    ids=["pytest", "unittest", "go", "cargo", "jest", "colours", "unknown"],
)
def test_the_failing_tests_are_read_from_a_runners_summary(output: str, names: list[str]) -> None:
    assert failing_tests(output) == names


def test_a_failing_test_named_twice_is_listed_once() -> None:
    assert failing_tests(PYTEST + PYTEST)[:2] == failing_tests(PYTEST)


@pytest.mark.parametrize(
    ("event_type", "data", "line"),
    [
        (
            "CulpritFound",
            {"batch_id": 1, "task_id": "fast-add", "broke_tests": ["t.py::test_add"]},
            "task fast-add: its branch broke the tests; failing: t.py::test_add",
        ),
        (
            "TaskSucceeded",
            {"task_id": "a", "attempt": 1, "commit": "0123456789abcdef", "changed_files": ["x.py"]},
            "task a attempt 1: commit 0123456789ab, 1 file(s): x.py",
        ),
        (
            "TaskFailed",
            {"task_id": "a", "attempt": 2, "exit_code": 1, "error": "failed:\nlast words"},
            "task a attempt 2: exit 1: failed: … last words",
        ),
        (
            "MergeConflicted",
            {"task_id": "b", "files": ["CHANGELOG.md"]},
            "task b: conflicts in CHANGELOG.md",
        ),
        (
            "TestsFailed",
            {
                "batch_id": 2,
                "commit": "abc",
                "exit_code": 1,
                "duration": 1.5,
                "failed_tests": ["x"],
            },
            "batch 2: tests failed on abc (exit 1, 1.5 s); failing: x",
        ),
        (
            "TaskSkipped",
            {"task_id": "c", "reason": "depends on 'b', which failed"},
            "task c: depends on 'b', which failed",
        ),
        ("RunCompleted", {"landed_commit": "abc", "landed_on": "main"}, "result abc on main"),
        ("NoSuchEvent", {"x": 1}, ""),
        (
            "TaskFailed",
            {"task_id": "a", "attempt": "not a number", "exit_code": 1},
            "task a attempt not a number: exit 1:",
        ),
    ],
)
def test_each_event_has_one_line_of_essentials(
    event_type: str, data: dict[str, Any], line: str
) -> None:
    assert describe(event_type, data) == line


def test_a_payload_of_the_wrong_shape_renders_as_nothing_rather_than_failing() -> None:
    assert describe("BatchStarted", {"task_ids": 5}) == ""


def test_a_message_in_one_line_keeps_its_first_and_last_lines() -> None:
    assert gist("command failed (exit status 1):\nstep\n\nerror: no network\n") == (
        "command failed (exit status 1): … error: no network"
    )
    assert gist("") == ""


def test_a_version_1_snapshot_is_read_in_todays_words() -> None:
    old = {
        "run_id": "r", "status": "completed", "base_branch": "main", "base_commit": "c0",
        "landed_commit": "m-b", "landed_on": "main",
        "batches": [{"batch_id": 1, "task_ids": ["a", "b", "c"], "can_parallel": True,
                     "status": "completed", "landed_after": "m-b"}],
        "tasks": [
            {"task_id": "a", "batch_id": 1, "status": "removed"},
            {"task_id": "b", "batch_id": 1, "status": "merged"},
            {"task_id": "c", "batch_id": 1, "status": "requested"},
        ],
    }  # fmt: skip
    state = RunState.from_json_dict(old)
    assert state.status == "landed"
    assert [t.status for t in state.tasks.values()] == ["landed", "landed", "pending"]
    assert (state.landed_commit, state.result_commit) == ("m-b", "m-b")

    failed = {**old, "status": "failed", "landed_on": None}
    state = RunState.from_json_dict(failed)
    assert (state.status, state.landed_commit, state.result_commit) == ("failed", None, "m-b")
