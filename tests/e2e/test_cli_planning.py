"""Session 0: `plait run --plan-from COMMAND --spec SPEC` makes the plan first, and nothing
runs unless that plan is valid."""

from __future__ import annotations

import json
import os
import stat
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


def test_the_claude_preset_plans_in_a_detached_worktree_with_the_spec_in_one_argument(
    tmp_path: Path,
) -> None:
    repo = make_repo(tmp_path / "repo")
    before = git(repo, "status", "--porcelain")
    spec = tmp_path / "spec.md"
    spec.write_text("Add a greeting; mind the 'quotes' and $(dollars).")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    record = tmp_path / "claude.json"
    fake = bin_dir / "claude"
    # A stand-in for the paid CLI: records its argv and cwd, then writes the plan it was asked for.
    fake.write_text(
        f"#!{sys.executable}\n"
        "import json, os, sys\n"
        f"json.dump({{'argv': sys.argv[1:], 'cwd': os.getcwd()}}, open({str(record)!r}, 'w'))\n"
        "open('plait-plan.yaml', 'w').write("
        "'tasks:\\n  - {id: greet, run: \"echo hi > hi.txt\"}\\n')\n"
    )
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    ran = plait(
        tmp_path,
        "--plan-from",
        "claude",
        "--spec",
        str(spec),
        "--repo",
        str(repo),
        path=f"{bin_dir}:{os.environ['PATH']}",
    )
    assert ran.returncode == 0, ran.stderr
    seen = json.loads(record.read_text())
    argv = seen["argv"]
    assert argv[0] == "-p"
    assert argv[2:] == [
        "--permission-mode",
        "acceptEdits",
        "--output-format",
        "stream-json",
        "--verbose",
    ]
    assert "Add a greeting; mind the 'quotes' and $(dollars)." in argv[1]
    assert Path(seen["cwd"]) != repo
    assert "_planning" in seen["cwd"]
    assert git(repo, "show", "main:hi.txt").strip() == "hi"
    assert git(repo, "status", "--porcelain") == before
