"""A CLI that tells the truth, as a user meets it: the installed `plait` in a subprocess,
real repositories, a SQLite file of its own. One test (or a few) per promise: landing the
green work, hints that work as printed, history with its essentials, logs, status with
paths and times, clean, --base, no traceback, and commands that import only what they use.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.cli_support import PLAIT, Ran, environment, plait, run_plait, write_plan, writes
from tests.gitrepo import git


def files_on(repo: Path, ref: str) -> set[str]:
    return set(git(repo, "ls-tree", "-r", "--name-only", ref).splitlines())


def failing_plan(tmp_path: Path, **settings: Any) -> str:
    """good lands; broken fails; later (after good) and needy (after broken) come next."""
    return write_plan(
        tmp_path / "plan.json",
        tasks=[
            writes("good", "good.txt"),
            {"id": "broken", "run": "echo 'half done' > half.txt; echo 'no network' >&2; exit 3"},
            writes("later", "later.txt", "good"),
            writes("needy", "needy.txt", "broken"),
        ],
        **settings,
    )


def run_id_of(ran: Ran) -> str:
    title = next(line for line in ran.out.splitlines() if line.strip().startswith("run "))
    return title.split()[1].rstrip(":")


# --- landing the green work, and hints that work as printed ----------------------------------


def test_a_stopped_run_with_tested_work_prints_the_land_command_that_lands_it(
    tmp_path: Path, home: Path, db: str, repo: Path
) -> None:
    main = git(repo, "rev-parse", "main")
    ran = plait(home, db, "run", failing_plan(tmp_path), "--repo", str(repo))

    assert ran.code == 1, ran.err
    assert git(repo, "rev-parse", "main") == main  # nothing landed by itself
    assert "the run stopped after batch 1 (on_task_failure: stop)" in ran.out
    assert "main did not move" in ran.out
    # never started, and said so
    assert "not started: the run failed" in ran.out
    land = ran.hint("land")
    assert land[-2:] == ["--db", db]  # the hint finds the same database when pasted

    landed = run_plait(home, land)

    assert landed.code == 1, landed.err  # landed, though not every task did
    assert "good.txt" in files_on(repo, "main")
    assert "landed" in landed.out
    assert "on main" in landed.out


def test_the_skip_hint_goes_on_without_the_failed_task_and_its_dependents(
    tmp_path: Path, home: Path, db: str, repo: Path
) -> None:
    ran = plait(home, db, "run", failing_plan(tmp_path), "--repo", str(repo))
    skip = ran.hint("skip")
    # The hint names the very program that printed it, unless that is the `plait` on PATH.
    on_path = shutil.which("plait")
    same = on_path is not None and os.path.realpath(on_path) == os.path.realpath(PLAIT)
    assert skip[:4] == ["plait" if same else PLAIT, "skip", run_id_of(ran), "broken"]

    skipped = run_plait(home, skip)

    assert {"good.txt", "later.txt"} <= files_on(repo, "main")
    assert "depends on 'broken', which was skipped" in skipped.out
    assert "skipped by a user" in skipped.out


def test_the_retry_and_resume_hints_work_as_printed(
    tmp_path: Path, home: Path, db: str, repo: Path
) -> None:
    marker = tmp_path / "network-is-back"
    plan = write_plan(
        tmp_path / "plan.json",
        tasks=[
            writes("good", "good.txt"),
            {"id": "flaky", "run": f"test -e {shlex.quote(str(marker))} && echo ok > flaky.txt"},
        ],
    )
    ran = plait(home, db, "run", plan, "--repo", str(repo))
    assert ran.hint("resume")[-2:] == ["--db", db]
    marker.touch()

    retried = run_plait(home, ran.hint("retry"))

    assert retried.code == 0, retried.out + retried.err
    assert {"good.txt", "flaky.txt"} <= files_on(repo, "main")


def test_with_on_task_failure_land_the_rest_lands_and_the_dependents_are_skipped(
    tmp_path: Path, home: Path, db: str, repo: Path
) -> None:
    ran = plait(
        home, db, "run", failing_plan(tmp_path, on_task_failure="land"), "--repo", str(repo)
    )

    assert ran.code == 1  # not every task landed
    assert {"good.txt", "later.txt"} <= files_on(repo, "main")
    assert "depends on 'broken', which failed" in ran.out
    status = json.loads(plait(home, db, "status", run_id_of(ran), "--json").out)
    assert status["status"] == "landed"
    assert {t["task_id"]: t["status"] for t in status["tasks"]} == {
        "good": "landed",
        "broken": "failed",
        "later": "landed",
        "needy": "skipped",
    }


# --- history, logs, status ----------------------------------------------------------------


def test_history_shows_each_events_essentials_and_json_carries_the_payloads(
    tmp_path: Path, home: Path, db: str, repo: Path
) -> None:
    plan = write_plan(
        tmp_path / "plan.json",
        tasks=[writes("good", "good.txt"), writes("culprit", "BROKEN")],
        test_command=(
            "test ! -e BROKEN || { echo 'FAILED tests/t.py::test_broken - boom'; exit 1; }"
        ),
    )
    run_id = plait(home, db, "run", plan, "--repo", str(repo), "--json").events()[0]["run_id"]

    history = plait(home, db, "history", run_id)

    assert history.code == 0, history.err
    lines = history.out.splitlines()
    culprit = next(line for line in lines if "CulpritFound" in line)
    assert "task culprit: its branch broke the tests; failing: tests/t.py::test_broken" in culprit
    succeeded = next(line for line in lines if "TaskSucceeded" in line and "task good" in line)
    assert "good.txt" in succeeded
    assert "commit " in succeeded
    assert any("TestsFailed" in line and "tests/t.py::test_broken" in line for line in lines)

    as_json = json.loads(plait(home, db, "history", run_id, "--json").out)
    found = next(row for row in as_json["timeline"] if row["type"] == "CulpritFound")
    assert found["data"]["task_id"] == "culprit"
    # No JUnit report from this runner: the names come from the output it printed.
    assert "FAILED tests/t.py::test_broken - boom" in found["data"]["output_tail"]
    assert found["summary"] in culprit


def test_logs_keep_attempts_apart_and_show_one_task_or_one_attempt(
    tmp_path: Path, home: Path, db: str, repo: Path
) -> None:
    marker = shlex.quote(str(tmp_path / "second"))
    flaky = (
        f"if [ -e {marker} ]; then echo 'attempt two works'; echo ok > f.txt; "
        f"else touch {marker}; echo 'attempt one fails'; exit 1; fi"
    )
    plan = write_plan(
        tmp_path / "plan.json",
        tasks=[{"id": "flaky", "run": flaky}, writes("other", "o.txt")],
        retries=1,
    )
    run_id = plait(home, db, "run", plan, "--repo", str(repo), "--json").events()[0]["run_id"]

    both = plait(home, db, "logs", run_id, "flaky")
    second = plait(home, db, "logs", run_id, "flaky", "--attempt", "2")
    every = plait(home, db, "logs", run_id)

    assert both.code == 0, both.err
    one = both.out.index("== flaky, attempt 1 (failed) ==")
    two = both.out.index("== flaky, attempt 2 (succeeded) ==")
    assert one < both.out.index("attempt one fails") < two < both.out.index("attempt two works")
    assert "attempt one fails" not in second.out
    assert "attempt two works" in second.out
    assert "== other, attempt 1 (succeeded) ==" in every.out
    unknown = plait(home, db, "logs", run_id, "nope")
    assert unknown.code == 2
    assert "has no task 'nope' (its tasks: flaky, other)" in unknown.err


def test_logs_follow_prints_a_running_tasks_output_live_until_the_run_ends(
    tmp_path: Path, home: Path, db: str, repo: Path
) -> None:
    release = tmp_path / "release"
    waits = (
        f"echo 'first line'; while [ ! -e {shlex.quote(str(release))} ]; do sleep 0.05; done; "
        "echo 'after the release' > after.txt; cat after.txt"
    )
    plan = write_plan(tmp_path / "plan.json", tasks=[{"id": "slow", "run": waits}])
    env = environment(home)
    runner = subprocess.Popen(
        [PLAIT, "run", plan, "--repo", str(repo), "--json", "--db", db],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert runner.stdout is not None
    run_id = json.loads(runner.stdout.readline())["run_id"]
    follower = subprocess.Popen(
        [PLAIT, "logs", run_id, "slow", "--follow", "--db", db],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert follower.stdout is not None
    try:
        assert follower.stdout.readline() == "first line\n"  # printed while the task runs
        release.touch()
        rest, err = follower.communicate(timeout=120)
        assert follower.returncode == 0, err
        assert "after the release" in rest  # and then followed to the run's end
    finally:
        release.touch()
        runner.communicate(timeout=120)
        follower.kill()


def test_status_lists_runs_with_their_project_path_start_and_duration(
    tmp_path: Path, home: Path, db: str, repo: Path
) -> None:
    plan = write_plan(tmp_path / "plan.json", tasks=[writes("a", "a.txt")])
    run_id = plait(home, db, "run", plan, "--repo", str(repo), "--json").events()[0]["run_id"]

    listed = plait(home, db, "status")
    one = plait(home, db, "status", run_id)
    as_json = json.loads(plait(home, db, "status", "--json").out)

    row = next(line for line in listed.out.splitlines() if run_id in line)
    assert str(repo) in row
    assert "landed" in row
    assert " s " in row + " "
    assert f"project: {repo}" in one.out
    assert "started: 20" in one.out
    assert "duration:" in one.out
    assert "batches: 1/1 landed" in one.out
    [summary] = as_json
    assert (summary["repo_path"], summary["status"]) == (str(repo), "landed")
    assert summary["started_at"]
    assert summary["duration"] is not None


# --- plan, --base, clean ------------------------------------------------------------------


def test_plan_says_how_many_tasks_run_at_once_under_max_concurrency(
    tmp_path: Path, home: Path
) -> None:
    plan = write_plan(
        tmp_path / "plan.json",
        tasks=[writes(f"t{i}", f"t{i}.txt") for i in range(6)],
        max_concurrency=3,
    )
    shown = run_plait(home, ["plait", "plan", plan])
    assert shown.code == 0, shown.err
    assert "6 tasks that can run in parallel" in shown.out
    assert "3 at a time (max_concurrency)" in shown.out
    assert "6 tasks in parallel" not in shown.out


def test_plan_shows_both_schedules_expected_length_and_the_critical_path(
    tmp_path: Path, home: Path
) -> None:
    tasks = [
        {**writes("a", "a.txt"), "estimate": 1},
        {**writes("long", "long.txt"), "estimate": 6},
        {**writes("after_a", "b.txt", "a"), "estimate": 5},
    ]
    plan = write_plan(tmp_path / "plan.json", tasks=tasks, schedule="ready")
    shown = run_plait(home, ["plait", "plan", plan])
    as_json = run_plait(home, ["plait", "plan", "--json", plan])

    assert shown.code == 0, shown.err
    assert "schedule: ready" in shown.out
    assert "dependency levels" in shown.out  # not batches: a ready run has none
    assert "expected, batch schedule: 11s" in shown.out  # 6 (long), then 5 (after_a)
    assert "expected, ready schedule: 6s" in shown.out
    assert "critical path: long (6s)" in shown.out
    assert json.loads(as_json.out)["expected"]["critical_path"] == ["long"]


def test_run_base_lands_on_the_given_branch_and_refuses_an_unknown_one(
    tmp_path: Path, home: Path, db: str, repo: Path
) -> None:
    git(repo, "branch", "dev")
    main = git(repo, "rev-parse", "main")
    plan = write_plan(tmp_path / "plan.json", tasks=[writes("a", "a.txt")])

    ran = plait(home, db, "run", plan, "--repo", str(repo), "--base", "dev")
    unknown = plait(home, db, "run", plan, "--repo", str(repo), "--base", "nope")
    bad = plait(home, db, "run", plan, "--repo", str(repo), "--base=-x")

    assert ran.code == 0, ran.out + ran.err
    assert "a.txt" in files_on(repo, "dev")
    assert git(repo, "rev-parse", "main") == main
    assert unknown.code == 2
    assert "base branch 'nope'" in unknown.err
    assert bad.code == 2
    assert "'base' must be a git branch name" in bad.err


def test_clean_removes_what_landed_and_keeps_unlanded_work_unless_asked(
    tmp_path: Path, home: Path, db: str, repo: Path
) -> None:
    failed = plait(home, db, "run", failing_plan(tmp_path), "--repo", str(repo))
    run_id = run_id_of(failed)
    kept_branches = {f"plait/{run_id}/broken", f"plait/{run_id}/_result"}
    assert kept_branches <= set(git(repo, "branch", "--format=%(refname:short)").split())

    status = plait(home, db, "status", run_id)
    assert f"its work is kept at refs/plait/kept/{run_id}/broken/1" in status.out, status.out

    recent = plait(home, db, "clean", "--older-than", "1d")
    cleaned = plait(home, db, "clean")

    assert recent.out.strip() == "nothing to clean"
    assert cleaned.code == 0, cleaned.err
    assert f"kept branch plait/{run_id}/_result: its work is not on main" in cleaned.out
    assert f"kept branch plait/{run_id}/broken: its worktree is kept" in cleaned.out
    assert "has changes nobody committed" in cleaned.out  # broken's worktree
    kept_ref = f"refs/plait/kept/{run_id}/broken/1"  # its failed attempt's work, committed
    assert f"kept ref {kept_ref}: an attempt's work plait kept" in cleaned.out
    assert kept_branches <= set(git(repo, "branch", "--format=%(refname:short)").split())
    discard = cleaned.hint("clean --discard-unlanded")

    discarded = run_plait(home, discard)

    assert discarded.code == 0, discarded.err
    assert git(repo, "branch", "--list", "plait/*") == ""
    assert git(repo, "for-each-ref", "refs/plait/kept/") == ""
    assert git(repo, "worktree", "list", "--porcelain").count("worktree ") == 1


def test_clean_removes_an_integration_worktree_a_finished_run_left(
    tmp_path: Path, home: Path, db: str, repo: Path
) -> None:
    plan = write_plan(tmp_path / "plan.json", tasks=[writes("a", "a.txt")])
    events = plait(home, db, "run", plan, "--repo", str(repo), "--json").events()
    run_id = events[0]["run_id"]
    root = Path(events[0]["worktree_root"])
    leftover = root / run_id / "_integration"  # as a plait that crashed used to leave it
    git(repo, "worktree", "add", "--detach", str(leftover), "main")

    cleaned = plait(home, db, "clean", "--run", run_id)

    assert f"removed worktree {leftover}" in cleaned.out
    assert not leftover.exists()


# --- no traceback, anywhere ---------------------------------------------------------------


def test_a_reader_that_stops_reading_gets_no_traceback(
    tmp_path: Path, home: Path, db: str, repo: Path
) -> None:
    loud = "for i in $(seq 2000); do echo yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy; done"
    plan = write_plan(tmp_path / "plan.json", tasks=[{"id": "loud", "run": loud}])
    run_id = plait(home, db, "run", plan, "--repo", str(repo), "--json").events()[0]["run_id"]
    reader = subprocess.Popen(
        [PLAIT, "history", run_id, "--json", "--db", db],
        env=environment(home), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert reader.stdout is not None
    assert reader.stderr is not None
    reader.stdout.readline()  # `| head -1`
    reader.stdout.close()
    err = reader.stderr.read().decode()
    reader.stderr.close()
    code = reader.wait(timeout=60)
    assert "Traceback" not in err
    assert err == ""
    assert code == 141


def test_a_missing_git_or_agent_is_one_line_not_a_traceback(
    tmp_path: Path, home: Path, db: str, repo: Path
) -> None:
    nothing = tmp_path / "empty-bin"
    nothing.mkdir()
    plan = write_plan(tmp_path / "plan.json", tasks=[writes("a", "a.txt")])
    spec = tmp_path / "spec.md"
    spec.write_text("do things\n")

    no_git = plait(home, db, "run", plan, "--repo", str(repo), env={"PATH": str(nothing)})
    no_claude = plait(
        home, db, "run", "--plan-from", "claude", "--spec", str(spec), "--repo", str(repo),
        env={"PATH": f"{nothing}:/usr/bin:/bin"},
    )  # fmt: skip

    assert (no_git.code, no_git.err.strip()) == (2, no_git.err.strip().splitlines()[0])
    assert "git" in no_git.err
    assert "not found" in no_git.err
    assert no_claude.code == 2
    assert "'claude' was not found on PATH" in no_claude.err
    for ran in (no_git, no_claude):
        assert "Traceback" not in ran.err


def test_a_bad_until_is_named_as_a_bad_until_not_an_invalid_plan(
    tmp_path: Path, home: Path, db: str, repo: Path
) -> None:
    plan = write_plan(tmp_path / "plan.json", tasks=[writes("a", "a.txt")])
    run_id = plait(home, db, "run", plan, "--repo", str(repo), "--json").events()[0]["run_id"]

    ran = plait(home, db, "history", run_id, "--until", "garbage")

    assert ran.code == 2
    assert ran.err.startswith("plait: --until 'garbage': give an event position")
    assert "invalid plan" not in ran.err


def test_an_unknown_run_is_named_in_one_line(home: Path, db: str) -> None:
    for command in (["status", "nosuchrun"], ["logs", "nosuchrun"], ["land", "nosuchrun"]):
        ran = plait(home, db, *command)
        assert ran.code == 2, command
        assert "no run 'nosuchrun'" in ran.err, ran.err
        assert "Traceback" not in ran.err


# --- commands import only what they use ----------------------------------------------------


@pytest.mark.parametrize("argv", [["--help"], ["plan", "{plan}"], ["status", "--help"]])
def test_help_and_a_dry_run_load_neither_the_store_nor_git_nor_the_web_app(
    tmp_path: Path, argv: list[str]
) -> None:
    plan = write_plan(tmp_path / "plan.json", tasks=[writes("a", "a.txt")])
    probe = (
        "import sys\n"
        "from plait.cli import main\n"
        "try:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('sqlalchemy', 'psycopg', 'starlette', 'uvicorn', "
        "'plait.execution.git.cli', 'plait.eventstore') if m in sys.modules]\n"
        "print(heavy, file=sys.stderr)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe, *(a.format(plan=plan) for a in argv)],
        capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert done.stderr.strip().splitlines()[-1] == "[]", done.stderr
    if argv == ["--help"]:
        for command in ("land", "retry", "skip", "logs", "clean", "history", "status"):
            assert f"    {command}" in done.stdout


def test_a_run_of_a_json_plan_on_a_current_store_loads_neither_yaml_nor_alembic(
    tmp_path: Path, home: Path, db: str, repo: Path
) -> None:
    plan = write_plan(tmp_path / "plan.json", tasks=[writes("a", "a.txt")])
    assert plait(home, db, "status").code == 0  # the store exists, its schema current
    probe = (
        "import sys\n"
        "from plait.cli import main\n"
        "code = main(sys.argv[1:])\n"
        "loaded = [m for m in ('yaml', 'alembic', 'plait.cli.demo') if m in sys.modules]\n"
        "print(code, loaded, file=sys.stderr)\n"
    )
    env = environment(home, {"XDG_CONFIG_HOME": str(home)})  # no user profiles file
    done = subprocess.run(
        [sys.executable, "-c", probe, "run", str(plan), "--repo", str(repo), "--db", db],
        capture_output=True, text=True, check=False, timeout=120, env=env,
    )  # fmt: skip

    assert done.stderr.strip().splitlines()[-1] == "0 []", done.stderr
    assert (repo / "a.txt").exists()


# --- the demo -----------------------------------------------------------------------------


def test_the_demo_prints_the_land_command_that_works_and_leaves_no_temporary_directory(
    tmp_path: Path, home: Path
) -> None:
    before = set(Path("/tmp").glob("plait-demo-*"))
    first = run_plait(home, ["plait", "demo"])
    again = run_plait(home, ["plait", "demo"])  # replaces the first one's directory

    assert (first.code, again.code) == (0, 0), again.err
    assert set(Path("/tmp").glob("plait-demo-*")) == before
    demo = home / "plait" / "demo"
    assert f"a sample repository in {demo / 'calculator'}" in again.out
    land = again.hint("land")
    assert land[-2:] == ["--db", f"sqlite:///{demo / 'plait.db'}"]

    landed = run_plait(home, land)

    assert "on main" in landed.out, landed.out + landed.err
    repo = demo / "calculator"
    assert (repo / "calc" / "divide.py").exists()
    assert "a - b" not in (repo / "calc" / "ops.py").read_text()  # the culprit stayed out
