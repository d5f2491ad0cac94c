"""`plait run`, `plait demo`, `plait status` and `plait history` as a user runs them: the
installed console script in a subprocess, with its own SQLite file."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.e2e.cli_support import plait, write_plan, writes
from tests.gitrepo import git


def test_run_exits_0_when_every_task_lands(tmp_path: Path, home: Path, db: str, repo: Path) -> None:
    plan = write_plan(
        tmp_path / "plan.json",
        tasks=[writes("a", "a.txt"), writes("b", "b.txt"), writes("c", "c.txt", "a")],
        test_command="test -f README.md",
    )

    ran = plait(home, db, "run", plan, "--repo", str(repo))

    assert ran.code == 0, ran.err + ran.out
    assert "landed" in ran.out
    assert {"a.txt", "b.txt", "c.txt"} <= set(os.listdir(repo))
    # Piped output keeps the progress view and the summary on lines of their own.
    title = next(line for line in ran.out.splitlines() if "run " in line and ": landed" in line)
    assert title.strip().startswith("run "), title


def test_run_exits_1_when_some_task_does_not_land(
    tmp_path: Path, home: Path, db: str, repo: Path
) -> None:
    plan = write_plan(
        tmp_path / "plan.json",
        tasks=[writes("good", "good.txt"), writes("breaks", "BROKEN")],
        test_command="test ! -e BROKEN",
    )

    ran = plait(home, db, "run", plan, "--repo", str(repo))

    assert ran.code == 1, ran.err + ran.out
    assert (repo / "good.txt").exists()
    assert not (repo / "BROKEN").exists()


def test_run_exits_2_for_an_invalid_plan_and_names_the_problem(
    tmp_path: Path, home: Path, db: str, repo: Path
) -> None:
    plan = write_plan(tmp_path / "plan.json", tasks=[writes("a", "a.txt", "no-such-task")])

    ran = plait(home, db, "run", plan, "--repo", str(repo))

    assert ran.code == 2
    assert "no-such-task" in ran.err
    assert ran.out == ""


@pytest.mark.parametrize("allow_red_base", [False, True])
def test_run_exits_2_for_a_test_command_that_cannot_run_and_nothing_runs(
    tmp_path: Path, home: Path, db: str, repo: Path, allow_red_base: bool
) -> None:
    plan = write_plan(
        tmp_path / "plan.json",
        tasks=[writes("a", "a.txt")],
        test_command="no-such-test-runner",
        allow_red_base=allow_red_base,
    )

    ran = plait(home, db, "run", plan, "--repo", str(repo))

    assert ran.code == 2, ran.err + ran.out
    text = " ".join(ran.out.split())  # rich wraps long lines
    assert "could not run (exit 127: not found)" in text
    assert "allow_red_base" not in text
    assert not (repo / "a.txt").exists()


def test_run_exits_2_when_the_tests_read_the_users_checkout_and_names_the_file(
    tmp_path: Path, home: Path, db: str, repo: Path
) -> None:
    # A test command that reads the checkout's copy of a file instead of the worktree's.
    plan = write_plan(
        tmp_path / "plan.json",
        tasks=[writes("a", "a.txt")],
        test_command=f"cat {repo}/src/app.txt > /dev/null",
    )

    ran = plait(home, db, "run", plan, "--repo", str(repo))

    assert ran.code == 2, ran.err + ran.out
    text = "".join(ran.out.split())
    assert "".join(f"read files of your checkout {repo}".split()) in text
    assert f"{repo}/src/app.txt" in text
    assert "test_setup_command" in text
    assert "setup_inputs:[pyproject.toml]" in text  # brackets printed, not read as markup
    assert not (repo / "a.txt").exists()


def test_run_exits_2_for_a_directory_that_is_not_a_git_repository(
    tmp_path: Path, home: Path, db: str
) -> None:
    plain = tmp_path / "not-a-repo"
    plain.mkdir()
    plan = write_plan(tmp_path / "plan.json", tasks=[writes("a", "a.txt")])

    ran = plait(home, db, "run", plan, "--repo", str(plain))

    assert ran.code == 2
    assert "not inside a git repository" in ran.err
    assert os.listdir(plain) == []


def test_run_json_prints_one_event_per_line_ending_with_run_completed(
    tmp_path: Path, home: Path, db: str, repo: Path
) -> None:
    plan = write_plan(tmp_path / "plan.json", tasks=[writes("a", "a.txt"), writes("b", "b.txt")])

    ran = plait(home, db, "run", plan, "--repo", str(repo), "--json")

    assert ran.code == 0, ran.err
    events = ran.events()  # every line parses as one JSON object
    assert all(isinstance(e, dict) and "type" in e and "position" in e for e in events)
    assert events[0]["type"] == "RunCreated"
    assert events[-1]["type"] == "RunCompleted"
    assert events[-1]["landed_on"] == "main"
    positions = [e["position"] for e in events]
    assert positions == sorted(positions)


def test_status_and_history_until_a_position_show_a_finished_run(
    tmp_path: Path, home: Path, db: str, repo: Path
) -> None:
    plan = write_plan(tmp_path / "plan.json", tasks=[writes("a", "a.txt"), writes("b", "b.txt")])
    events = plait(home, db, "run", plan, "--repo", str(repo), "--json").events()
    run_id = events[0]["run_id"]
    while_running = next(e["position"] for e in events if e["type"] == "TaskStarted")

    status = plait(home, db, "status", run_id)
    assert status.code == 0, status.err
    assert f"run {run_id}: landed" in status.out

    as_json = plait(home, db, "status", run_id, "--json")
    assert json.loads(as_json.out)["status"] == "landed"

    history = plait(home, db, "history", run_id, "--until", str(while_running), "--json")
    assert history.code == 0, history.err
    replayed = json.loads(history.out)
    assert [row["position"] for row in replayed["timeline"]] == [
        e["position"] for e in events if e["position"] <= while_running
    ]
    assert replayed["status_at"]["status"] == "running"

    full = plait(home, db, "history", run_id)
    assert full.code == 0, full.err
    assert "RunCompleted" in full.out

    unknown = plait(home, db, "status", "nosuchrun")
    assert unknown.code == 2


def test_demo_shows_a_parallel_batch_a_conflict_a_culprit_and_stops_with_tested_work(
    tmp_path: Path, home: Path
) -> None:
    directory = tmp_path / "demo"

    ran = plait(
        home, f"sqlite:///{tmp_path / 'demo.db'}", "demo", "--dir", str(directory), "--json"
    )

    assert ran.code == 0, ran.err  # the demo stops by design: it did what it shows
    events = ran.events()
    types = [e["type"] for e in events]
    running: set[str] = set()
    most = 0
    for event in events:
        if event["type"] == "TaskStarted" and event["batch_id"] == 1:
            running.add(event["task_id"])
            most = max(most, len(running))
        elif event["type"] in ("TaskSucceeded", "TaskFailed"):
            running.discard(event["task_id"])
    assert most >= 2
    assert "MergeConflicted" in types
    assert "FellBackToSequential" in types
    assert "TaskRequeued" in types
    assert [e["task_id"] for e in events if e["type"] == "CulpritFound"] == ["fast-add"]
    assert [e["task_id"] for e in events if e["type"] == "TaskFailed"] == ["rates"]
    assert types[-1] == "RunFailed"
    repo = directory / "calculator"
    result = f"plait/{events[0]['run_id']}/_result"
    assert "calc/divide.py" in git(repo, "ls-tree", "-r", "--name-only", result)
    assert not (repo / "calc" / "divide.py").exists()  # main did not move


def test_the_next_run_reuses_the_worktrees_a_pooled_run_left(
    tmp_path: Path, home: Path, db: str, repo: Path
) -> None:
    """`plait run --reuse-worktrees` leaves its idle pooled worktrees for the next process on
    the repository; `plait clean` removes them."""
    root = tmp_path / "worktrees"
    pooled = ["--repo", str(repo), "--reuse-worktrees", "--worktree-root", str(root), "--json"]
    first = plait(
        home, db, "run", write_plan(tmp_path / "1.json", tasks=[writes("a", "a.txt")]), *pooled
    )
    assert first.code == 0, first.err + first.out
    slots = list((root).glob("*/_pool/*/.git"))
    assert len(slots) == 1, "the idle slot outlived the first process"
    inode = slots[0].stat().st_ino  # a new `worktree add` would write a new .git file
    second = plait(
        home, db, "run", write_plan(tmp_path / "2.json", tasks=[writes("b", "b.txt")]), *pooled
    )
    assert second.code == 0, second.err + second.out

    def created(ran_out: str) -> list[str]:
        events = [json.loads(line) for line in ran_out.splitlines() if line.startswith("{")]
        return [e["path"] for e in events if e["type"] == "WorktreeCreated"]

    assert created(first.out) == created(second.out), "the second run got the first one's slot"
    assert slots[0].stat().st_ino == inode, "reused, not made again"
    cleaned = plait(home, db, "clean")
    assert cleaned.code == 0, cleaned.err
    assert "idle pooled worktree" in cleaned.out
    assert git(repo, "worktree", "list", "--porcelain").count("worktree ") == 1
