"""Merge validation: conflicts re-run on the new tip, culprits named by bisection, flaky tests
forgiven, and a red base refused before any task runs."""

from __future__ import annotations

import shlex
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.integration.orchestration_helpers import (
    Harness,
    file_on,
    files_on,
    of_type,
    open_harness,
    plan,
    task,
    types_of,
    write,
)


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    async with open_harness(tmp_path) as opened:
        yield opened


# The repository's "test suite": green unless a file named BROKEN is in the tree.
TESTS = "test ! -e BROKEN"


async def test_conflicting_tasks_both_land_after_the_sequential_re_run(harness: Harness) -> None:
    # Both append to the end of the same file: one merges, the other conflicts with it, and
    # re-run on the tip that has the first line, it appends after it cleanly.
    done = await harness.run(
        plan(
            task("red", "echo red >> src/app.txt"),
            task("blue", "echo blue >> src/app.txt"),
            test_command=TESTS,
        )
    )

    assert done.result.status == "landed", done.result.error
    conflicted = of_type(done.events, "MergeConflicted")
    assert len(conflicted) == 1
    loser = conflicted[0]["task_id"]
    assert conflicted[0]["files"] == ["src/app.txt"]
    fallback = of_type(done.events, "FellBackToSequential")
    assert [f["task_ids"] for f in fallback] == [[loser]]
    assert [r["task_id"] for r in of_type(done.events, "TaskRequeued")] == [loser]
    content = file_on(harness.repo, "main", "src/app.txt").splitlines()
    assert content[:3] == ["line 1", "line 2", "line 3"]
    assert sorted(content[3:]) == ["blue", "red"]
    assert done.result.landed_on == "main"


async def test_a_test_breaking_task_is_named_the_culprit_and_the_others_land(
    harness: Harness,
) -> None:
    done = await harness.run(
        plan(
            task("docs", write("docs.txt", "docs")),
            task("breaker", write("BROKEN", "oops")),
            task("feature", write("feature.txt", "feature")),
            task("extra", write("extra.txt", "extra")),
            test_command=TESTS,
        )
    )

    assert done.result.status == "landed", done.result.error
    assert [c["task_id"] for c in of_type(done.events, "CulpritFound")] == ["breaker"]
    on_main = files_on(harness.repo, "main")
    assert {"docs.txt", "feature.txt", "extra.txt"} <= on_main
    assert "BROKEN" not in on_main
    kept = of_type(done.events, "WorkKept")
    assert [(k["task_id"], "culprit" in k["reason"]) for k in kept] == [("breaker", True)]
    tests_now = subprocess.run(["/bin/sh", "-c", TESTS], cwd=harness.repo, check=False)
    assert tests_now.returncode == 0


async def test_a_test_that_fails_once_and_passes_on_a_re_run_is_flaky_and_blames_nobody(
    harness: Harness,
) -> None:
    failed_once = shlex.quote(str(harness.shared / "failed-once"))
    # Fails the first time it sees the task's file, passes every time after.
    flaky_tests = (
        f"if [ -e feature.txt ] && [ ! -e {failed_once} ]; "
        f"then touch {failed_once}; echo 'timing glitch' >&2; exit 1; fi"
    )
    done = await harness.run(
        plan(task("feature", write("feature.txt", "feature")), test_command=flaky_tests)
    )

    assert done.result.status == "landed", done.result.error
    flaky = of_type(done.events, "TestsFlaky")
    assert len(flaky) == 1
    assert "timing glitch" in flaky[0]["output_tail"]
    assert of_type(done.events, "CulpritFound") == []
    assert of_type(done.events, "WorkKept") == []
    assert "feature.txt" in files_on(harness.repo, "main")


async def test_a_red_base_stops_the_run_before_any_task_runs(harness: Harness) -> None:
    (harness.repo / "BROKEN").write_text("already\n")
    subprocess.run(["git", "add", "BROKEN"], cwd=harness.repo, check=True)
    subprocess.run(
        ["git", "commit", "--quiet", "-m", "break the tests"], cwd=harness.repo, check=True
    )
    before = subprocess.run(
        ["git", "rev-parse", "main"], cwd=harness.repo, check=True, capture_output=True, text=True
    ).stdout

    done = await harness.run(plan(task("feature", write("feature.txt", "x")), test_command=TESTS))

    assert done.result.status == "failed"
    assert "base commit" in (done.result.error or "")
    baseline = of_type(done.events, "BaselineTested")
    assert [(b["passed"], b["allowed"]) for b in baseline] == [(False, False)]
    assert "TaskStarted" not in types_of(done.events)
    assert "WorktreeCreated" not in types_of(done.events)
    assert types_of(done.events)[-1] == "RunFailed"
    after = subprocess.run(
        ["git", "rev-parse", "main"], cwd=harness.repo, check=True, capture_output=True, text=True
    ).stdout
    assert after == before


async def test_a_red_base_is_run_on_when_allowed(harness: Harness) -> None:
    (harness.repo / "BROKEN").write_text("already\n")
    subprocess.run(["git", "add", "BROKEN"], cwd=harness.repo, check=True)
    subprocess.run(
        ["git", "commit", "--quiet", "-m", "break the tests"], cwd=harness.repo, check=True
    )

    done = await harness.run(
        plan(
            task("feature", write("feature.txt", "x")),
            test_command=TESTS,
            allow_red_base=True,
        )
    )

    baseline = of_type(done.events, "BaselineTested")
    assert [(b["passed"], b["allowed"]) for b in baseline] == [(False, True)]
    assert [s["task_id"] for s in of_type(done.events, "TaskStarted")] == ["feature"]
    assert done.result.status == "landed", done.result.error
    # The tests were red before the task ran: it did not break them, so it is not blamed.
    assert of_type(done.events, "CulpritFound") == []
    assert "feature.txt" in files_on(harness.repo, "main")


async def test_with_a_red_base_allowed_a_task_that_breaks_fixed_tests_is_still_blamed(
    harness: Harness,
) -> None:
    (harness.repo / "BROKEN").write_text("already\n")
    subprocess.run(["git", "add", "BROKEN"], cwd=harness.repo, check=True)
    subprocess.run(
        ["git", "commit", "--quiet", "-m", "break the tests"], cwd=harness.repo, check=True
    )

    done = await harness.run(
        plan(
            task("fix", "rm BROKEN"),
            task("rebreak", write("BROKEN", "again"), "fix"),
            test_command=TESTS,
            allow_red_base=True,
        )
    )

    assert done.result.status == "landed", done.result.error
    assert [c["task_id"] for c in of_type(done.events, "CulpritFound")] == ["rebreak"]
    assert "BROKEN" not in files_on(harness.repo, "main")
