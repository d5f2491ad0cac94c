"""Session 0: `plait run --plan-from COMMAND --spec SPEC` makes the plan first, and nothing
runs unless that plan is valid."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from plait.eventstore import SqlEventStore
from tests.gitrepo import git, make_repo

PLAIT = str(Path(sys.executable).with_name("plait"))
SPEC_PLAN = 'tasks:\n  - {id: a, run: "echo a > a.txt"}\n  - {id: b, run: "echo b > b.txt"}\n'


def plait(tmp: Path, *args: str, path: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "XDG_DATA_HOME": str(tmp / "data")}
    if path is not None:
        env["PATH"] = path
    return subprocess.run(
        [PLAIT, "run", *args, "--db", f"sqlite:///{tmp / 'plait.db'}"],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        env=env,
        check=False,
        timeout=300,
    )


def stored_types(tmp: Path) -> list[str]:
    store = SqlEventStore(f"sqlite:///{tmp / 'plait.db'}")
    try:
        return [e.type for e in store.read_all(0, 100_000)]
    finally:
        store.close()


def test_a_planning_command_makes_the_plan_and_the_run_lands_it(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    spec = tmp_path / "spec.md"
    spec.write_text(SPEC_PLAN)
    ran = plait(
        tmp_path,
        "--plan-from",
        'cp "$PLAIT_SPEC" "$PLAIT_PLAN_OUTPUT"',
        "--spec",
        str(spec),
        "--repo",
        str(repo),
    )
    assert ran.returncode == 0, ran.stderr
    assert git(repo, "show", "main:a.txt").strip() == "a"
    assert git(repo, "show", "main:b.txt").strip() == "b"
    store = SqlEventStore(f"sqlite:///{tmp_path / 'plait.db'}")
    try:
        accepted = [e for e in store.read_all(0, 100_000) if e.type == "PlanAccepted"]
    finally:
        store.close()
    assert "planned by" in accepted[0].data["source"]
    assert git(repo, "worktree", "list", "--porcelain").count("worktree ") == 1


def test_a_planning_command_that_prints_its_plan_on_stdout_is_heard(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    spec = tmp_path / "spec.md"
    spec.write_text(SPEC_PLAN)
    ran = plait(
        tmp_path, "--plan-from", 'cat "$PLAIT_SPEC"', "--spec", str(spec), "--repo", str(repo)
    )
    assert ran.returncode == 0, ran.stderr


def test_an_invalid_plan_from_the_planner_stops_everything_before_a_run(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    ran = plait(tmp_path, "--plan-from", "echo 'tasks: [{id: Bad}]'", "--repo", str(repo))
    assert ran.returncode == 2
    assert "task 'Bad': id must match" in ran.stderr
    assert "RunStarted" not in stored_types(tmp_path)


def test_a_failing_planning_command_stops_everything_and_says_why(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    ran = plait(tmp_path, "--plan-from", "echo no spec here >&2; exit 3", "--repo", str(repo))
    assert ran.returncode == 2
    assert "exited with 3" in ran.stderr
    assert "no spec here" in ran.stderr
    assert "RunStarted" not in stored_types(tmp_path)


def test_a_plan_file_and_a_planning_command_together_are_refused(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    (tmp_path / "plan.yaml").write_text(SPEC_PLAN)
    ran = plait(tmp_path, str(tmp_path / "plan.yaml"), "--plan-from", "true", "--repo", str(repo))
    assert ran.returncode == 2
    assert "one of the two" in ran.stderr


def test_a_planning_preset_that_is_not_installed_is_refused_before_anything_runs(
    tmp_path: Path,
) -> None:
    repo = make_repo(tmp_path / "repo")
    spec = tmp_path / "spec.md"
    spec.write_text("Add a greeting.")
    ran = plait(
        tmp_path, "--plan-from", "claude", "--spec", str(spec), "--repo", str(repo), path="/bin"
    )
    assert ran.returncode == 2
    assert "the program 'claude' was not found on PATH" in ran.stderr
    assert "Traceback" not in ran.stderr
