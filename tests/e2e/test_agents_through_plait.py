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
    assert "no change" in row
    assert "landed" not in row


def test_a_task_that_may_change_nothing_is_a_success(user: AgentRun, repo: Path) -> None:
    plan = user.plan([{"id": "idle", "prompt": "fake: nothing", "allow_no_change": True}])
    ran = user.run(repo, plan)

    assert ran.code == 0, ran.err
    assert ran.of_type("TaskSucceeded")[0]["commit"] is None


def test_byproducts_and_the_agents_own_files_stay_out_of_the_commit(
    user: AgentRun, repo: Path
) -> None:
    prompt = (
        "fake: write pkg/mod.py VALUE = 1\n"
        "fake: write pkg/__pycache__/mod.cpython-311.pyc not source\n"
        "fake: write .pytest_cache/v/cache/lastfailed {}\n"
    )
    ran = user.run(repo, user.plan([{"id": "mod", "prompt": prompt}]))

    assert ran.code == 0, ran.err
    landed = git(repo, "diff", "--name-only", "HEAD~1", "HEAD").splitlines()
    assert landed == ["pkg/mod.py"]
    assert git(repo, "show", "main:.gitignore") == ".env\nbuild/"
