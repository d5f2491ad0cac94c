"""The real Claude Code, Codex and aider CLIs, run by `plait run` as a user would, against
the fake provider (only the model's reply is fake): an edit lands after the tests pass, a
provider failure fails the task with the CLI's own reason, a reply that changes nothing is
`no_change`, tool files and byproducts stay out of the commit, cost and tokens are recorded.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.agent_runs import SETUPS, AgentRun
from tests.fakemodel.server import FakeModelServer
from tests.gitrepo import git, make_repo

pytestmark = pytest.mark.agents

PRESETS = sorted(SETUPS)
# Green on the base commit; red once a task adds broken.txt.
TESTS = "test ! -e broken.txt"


@pytest.fixture(params=PRESETS)
def user(request: pytest.FixtureRequest, tmp_path: Path, fake_model: FakeModelServer) -> AgentRun:
    return AgentRun(tmp_path, fake_model, SETUPS[request.param])


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "repo")


def test_an_agents_edit_is_committed_and_lands_once_the_tests_pass(
    user: AgentRun, repo: Path
) -> None:
    plan = user.plan(
        [{"id": "greet", "prompt": "Add a greeting.\nfake: write notes/hello.txt hello world"}],
        test_command=TESTS,
    )
    ran = user.run(repo, plan)

    assert ran.code == 0, ran.err
    assert git(repo, "show", "main:notes/hello.txt") == "hello world"
    started = ran.of_type("TaskStarted")[0]
    assert started["agent"] == user.setup.preset
    assert started["agent_version"]
    assert started["model"] == user.setup.model


def test_an_agents_tokens_and_cost_are_recorded_and_shown(user: AgentRun, repo: Path) -> None:
    plan = user.plan([{"id": "greet", "prompt": "fake: write hello.txt hi"}])
    ran = user.run(repo, plan)

    assert ran.code == 0, ran.err
    [report] = ran.of_type("AgentReported")
    assert report["error"] == ""
    assert report["tokens_in"] > 0
    assert report["tokens_out"] > 0
    if user.setup.reports_cost:
        assert report["cost_usd"] > 0
    status = user.plait("status", ran.of_type("RunCreated")[0]["run_id"], "--json")
    [task] = json.loads(status.out)["tasks"]
    assert task["total_tokens_in"] == report["tokens_in"]


def test_a_provider_that_refuses_the_key_fails_the_task_with_the_clis_own_reason(
    user: AgentRun, repo: Path
) -> None:
    before = git(repo, "rev-parse", "main")
    plan = user.plan([{"id": "denied", "prompt": "fake: fail 401\nfake: write a.txt A"}])
    ran = user.run(repo, plan)

    assert ran.code == 1
    [failed] = ran.of_type("TaskFailed")
    assert failed["error"]
    assert "{" not in failed["error"], failed["error"]  # words, not a tail of raw JSON
    assert not ran.of_type("TaskSucceeded")
    assert git(repo, "rev-parse", "main") == before


def test_an_agent_that_changes_nothing_ends_no_change_and_lands_nothing(
    user: AgentRun, repo: Path
) -> None:
    before = git(repo, "rev-parse", "main")
    plan = user.plan([{"id": "idle", "prompt": "Look around.\nfake: nothing"}])
    ran = user.run(repo, plan)

    assert ran.code == 1
    assert ran.of_type("TaskChangedNothing")
    assert not ran.of_type("TaskSucceeded")
    assert not ran.of_type("BranchMerged")
    assert git(repo, "rev-parse", "main") == before
    shown = user.run(repo, plan, as_json=False)
    [row] = [line for line in shown.out.splitlines() if "│ idle " in line]
    assert "no_change" in row
    assert "landed" not in row


def test_a_task_that_may_change_nothing_is_a_success(user: AgentRun, repo: Path) -> None:
    plan = user.plan([{"id": "idle", "prompt": "fake: nothing", "allow_no_change": True}])
    ran = user.run(repo, plan)

    assert ran.code == 0, ran.err
    assert ran.of_type("TaskSucceeded")[0]["commit"] is None


def test_byproducts_and_the_agents_own_files_stay_out_of_the_commit(
    user: AgentRun, repo: Path
) -> None:
    # What a setup or a test run leaves behind, untracked: bytecode, a pytest cache, a venv.
    setup = (
        "mkdir -p pkg/__pycache__ .pytest_cache/v .venv/bin"
        " && echo x > pkg/__pycache__/mod.cpython-311.pyc"
        " && echo {} > .pytest_cache/v/lastfailed && echo x > .venv/bin/python"
    )
    plan = user.plan([{"id": "mod", "prompt": "fake: write pkg/mod.py VALUE = 1"}])
    ran = user.run(repo, {**plan, "setup_command": setup})

    assert ran.code == 0, ran.err
    landed = git(repo, "diff", "--name-only", "HEAD~1", "HEAD").splitlines()
    assert landed == ["pkg/mod.py"]
    assert git(repo, "show", "main:.gitignore") == ".env\nbuild/"


def conflicting_plan(user: AgentRun, second_extra: str = "") -> dict[str, object]:
    return user.plan(
        [
            {"id": "first", "prompt": "fake: write shared.txt from first"},
            {"id": "second", "prompt": f"fake: write shared.txt from second\n{second_extra}"},
        ],
        test_command=TESTS,
    )


def test_a_conflict_between_two_agent_tasks_is_resolved_by_the_agent_that_made_it(
    user: AgentRun, repo: Path
) -> None:
    ran = user.run(repo, conflicting_plan(user))

    assert ran.code == 0, ran.err
    assert [e["task_id"] for e in ran.of_type("MergeConflicted")] == ["second"]
    [started] = ran.of_type("ConflictResolutionStarted")
    assert started["files"] == ["shared.txt"]
    if user.setup.resumes:
        own = [e for e in ran.of_type("AgentReported") if e["task_id"] == "second"]
        assert started["session_id"] == own[0]["session_id"]
    assert ran.of_type("ConflictResolved")
    both = sorted(git(repo, "show", "main:shared.txt").splitlines())
    assert both == ["from first", "from second"]


def test_when_the_agent_cannot_resolve_its_conflict_the_task_is_re_run_on_the_new_tip(
    user: AgentRun, repo: Path
) -> None:
    ran = user.run(repo, conflicting_plan(user, "fake: leave-conflicts"))

    assert ran.code == 0, ran.err
    [failed] = ran.of_type("ConflictResolutionFailed")
    assert "conflict markers are left in shared.txt" in failed["reason"]
    reruns = [e for e in ran.of_type("TaskStarted") if e["task_id"] == "second"]
    assert len(reruns) == 2
    assert git(repo, "show", "main:shared.txt") == "from second"


def test_the_agent_plans_the_work_in_a_worktree_and_every_planned_task_runs_on_it(
    user: AgentRun, repo: Path, tmp_path: Path
) -> None:
    before = git(repo, "status", "--porcelain")
    plan = (
        "tasks:\\n  - id: greet\\n    prompt: 'fake: write hello.txt hi'\\n"
        "  - id: wave\\n    prompt: 'fake: write wave.txt o/'"
    )
    spec = tmp_path / "SPEC.md"
    spec.write_text(
        f"Greet and wave; mind the 'quotes' and $(dollars).\nfake: write plait-plan.yaml {plan}\n"
    )

    user.write_profiles_file({"planner": user.profile()})  # ~/.config/plait/profiles.yaml

    ran = user.plait(
        "run", "--plan-from", "planner", "--spec", str(spec), "--repo", str(repo), "--json"
    )

    assert ran.code == 0, ran.err
    started = ran.of_type("TaskStarted")
    assert sorted(e["task_id"] for e in started) == ["greet", "wave"]
    assert {e["agent"] for e in started} == {user.setup.preset}
    assert {e["profile"] for e in started} == {"planner"}
    assert git(repo, "show", "main:hello.txt") == "hi"
    assert git(repo, "show", "main:wave.txt") == "o/"
    assert git(repo, "status", "--porcelain") == before


def most_at_once(events: list[dict[str, object]], tasks: set[str]) -> int:
    """The most of `tasks` whose agent was running at the same time, in event order."""
    running = most = 0
    for event in events:
        if event.get("task_id") not in tasks:
            continue
        if event["type"] == "TaskStarted":
            running += 1
            most = max(most, running)
        elif event["type"] in ("TaskSucceeded", "TaskFailed", "TaskChangedNothing"):
            running -= 1
    return most


def test_a_dozen_real_agents_run_at_once_and_a_profiles_limit_holds(
    user: AgentRun, repo: Path
) -> None:
    limited = {f"slow-{n}" for n in range(6)}
    free = {f"free-{n}" for n in range(6)}
    tasks = [
        {"id": name, "prompt": f"fake: write {name}.txt {name}", "profile": profile}
        for names, profile in ((sorted(limited), "limited"), (sorted(free), "agent"))
        for name in names
    ]
    plan = user.plan(tasks, max_concurrency=12)
    plan["profiles"]["limited"] = user.profile(max_concurrency=2)

    ran = user.run(repo, plan)

    assert ran.code == 0, ran.err
    events = ran.events()
    assert most_at_once(events, limited) <= 2
    assert most_at_once(events, limited | free) > 2
    assert len(ran.of_type("TaskSucceeded")) == 12
    for name in limited | free:
        assert git(repo, "show", f"main:{name}.txt") == name


def test_an_agent_leaves_the_users_git_config_as_it_was(user: AgentRun, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "bare-identity", identity=False)
    config = (repo / ".git" / "config").read_text()
    ran = user.run(repo, user.plan([{"id": "greet", "prompt": "fake: write hello.txt hi"}]))

    assert ran.code == 0, ran.err
    assert (repo / ".git" / "config").read_text() == config


@pytest.mark.slow  # aider backs off for about a minute before it gives up
def test_a_provider_that_keeps_failing_fails_the_task_with_the_clis_own_reason(
    user: AgentRun, repo: Path
) -> None:
    plan = user.plan([{"id": "down", "prompt": "fake: fail 500\nfake: write a.txt A"}])
    ran = user.run(repo, plan)

    assert ran.code == 1
    [failed] = ran.of_type("TaskFailed")
    assert failed["error"]
    assert "{" not in failed["error"], failed["error"]
    assert not ran.of_type("TaskSucceeded")


def test_an_agent_whose_provider_hangs_is_stopped_at_its_timeout(
    user: AgentRun, repo: Path
) -> None:
    plan = user.plan([{"id": "stuck", "prompt": "fake: hang", "timeout": 5}])
    ran = user.run(repo, plan)

    assert ran.code == 1
    [failed] = ran.of_type("TaskFailed")
    assert "timed out after 5 s" in failed["error"]
