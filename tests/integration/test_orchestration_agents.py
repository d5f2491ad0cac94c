"""A custom agent template: the exact command line, the prompt as one untouched argument,
stdin at /dev/null, the task variables set, plait's own secrets and provider keys withheld.

(The presets run the real CLIs: tests/e2e/test_agents_through_plait.py.)"""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from plait.execution.runners.sessions import SESSION_VARIABLE
from tests.integration.orchestration_helpers import (
    Harness,
    file_on,
    of_type,
    open_harness,
    plan,
)

# Records what it was given, then "codes": edits a file in its working directory.
FAKE_AGENT = """\
import json, os, sys
stdin = os.fstat(0)
devnull = os.stat(os.devnull)
report = {
    "argv": sys.argv[1:],
    "cwd": os.getcwd(),
    "stdin_is_devnull": (stdin.st_dev, stdin.st_ino, stdin.st_rdev)
    == (devnull.st_dev, devnull.st_ino, devnull.st_rdev),
    "env": {k: v for k, v in os.environ.items() if k.startswith("PLAIT_")},
    "keys": sorted(k for k in os.environ if k.endswith("_API_KEY")),
}
with open(os.environ["FAKE_AGENT_REPORT"], "w") as out:
    json.dump(report, out)
with open("src/app.txt", "a") as out:
    out.write("written by the agent\\n")
"""

PROMPT = (
    "Fix the \"quoted\" bug; don't `rm -rf /`; $(touch pwned) ${HOME} 'single' \\ {title}\n"
    "second line"
)


@pytest.fixture
def fake_agent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A custom agent program; returns where it writes its report."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "my-agent"
    script.write_text(f"#!{sys.executable}\n{FAKE_AGENT}")
    script.chmod(0o755)
    report = tmp_path / "agent-report.json"
    monkeypatch.setenv("FAKE_AGENT_REPORT", str(report))
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-not-for-a-custom-agent")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-not-for-a-custom-agent")
    monkeypatch.setenv("PLAIT_TOKEN", "secret-token")
    monkeypatch.setenv("PLAIT_DATABASE_URL", "postgresql://user:password@db/plait")
    return report


@pytest.fixture
async def harness(tmp_path: Path, fake_agent: Path) -> AsyncIterator[Harness]:
    async with open_harness(tmp_path) as opened:
        yield opened


def template(harness: Harness) -> list[str]:
    return [str(harness.root / "bin" / "my-agent"), "--message", "{prompt}", "--yes"]


async def run_agent_task(harness: Harness) -> tuple[Any, dict[str, Any]]:
    agent = template(harness)
    done = await harness.run(
        plan({"id": "fix-bug", "title": "Fix the bug", "agent": agent, "prompt": PROMPT})
    )
    report = json.loads((harness.root / "agent-report.json").read_text())
    return done, report


async def test_a_custom_agent_gets_exactly_its_command_line_with_the_prompt_as_one_argument(
    harness: Harness,
) -> None:
    done, report = await run_agent_task(harness)

    assert done.result.status == "landed", done.result.error
    assert report["argv"] == ["--message", PROMPT, "--yes"]
    assert of_type(done.events, "TaskStarted")[0]["command"] == [
        str(harness.root / "bin" / "my-agent"),
        "--message",
        PROMPT,
        "--yes",
    ]
    assert not (Path(report["cwd"]) / "pwned").exists()
    assert not (harness.repo / "pwned").exists()


async def test_an_agent_task_has_stdin_at_dev_null_and_works_in_its_own_worktree(
    harness: Harness,
) -> None:
    done, report = await run_agent_task(harness)

    assert report["stdin_is_devnull"] is True
    worktree = of_type(done.events, "WorktreeCreated")[0]["path"]
    assert Path(report["cwd"]).resolve() == Path(worktree).resolve()
    assert file_on(harness.repo, "main", "src/app.txt").endswith("written by the agent")


async def test_an_agent_task_gets_the_task_variables_but_not_plaits_secrets(
    harness: Harness,
) -> None:
    done, report = await run_agent_task(harness)

    worktree = of_type(done.events, "WorktreeCreated")[0]["path"]
    # The session mark (how plait finds the task's processes to kill them) is not a secret.
    session = report["env"].pop(SESSION_VARIABLE)
    assert session.count(".") == 1
    assert report["env"] == {
        "PLAIT_RUN_ID": done.run_id,
        "PLAIT_TASK_ID": "fix-bug",
        "PLAIT_TASK_TITLE": "Fix the bug",
        "PLAIT_TASK_PROMPT": PROMPT,
        "PLAIT_WORKTREE": worktree,
    }


async def test_a_custom_agent_gets_no_provider_key_unless_a_profile_passes_it(
    harness: Harness,
) -> None:
    done, report = await run_agent_task(harness)
    assert report["keys"] == []

    profile = {"agent": template(harness), "pass_env": ["OPENAI_API_KEY"]}
    task = {"id": "with-key", "prompt": PROMPT, "profile": "mine"}
    done = await harness.run({**plan(task), "profiles": {"mine": profile}})

    assert done.result.status == "landed", done.result.error
    report = json.loads((harness.root / "agent-report.json").read_text())
    assert report["keys"] == ["OPENAI_API_KEY"]
