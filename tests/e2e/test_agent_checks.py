"""Before any task starts, every agent CLI the plan needs is there in a version plait
drives; otherwise the run is refused (exit 2) with a message naming it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from plait.eventstore import SqlEventStore
from tests.gitrepo import make_repo

PLAIT = str(Path(sys.executable).with_name("plait"))


def run_plan(
    tmp_path: Path, plan: Mapping[str, object], path: str
) -> subprocess.CompletedProcess[str]:
    repo = make_repo(tmp_path / "repo")
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(json.dumps(plan))
    env = {**os.environ, "PATH": path, "XDG_DATA_HOME": str(tmp_path / "data")}
    return subprocess.run(
        [
            PLAIT,
            "run",
            str(plan_file),
            "--repo",
            str(repo),
            "--db",
            f"sqlite:///{tmp_path / 'p.db'}",
        ],
        env=env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        check=False,
        timeout=120,
    )


def no_task_started(tmp_path: Path) -> bool:
    store = SqlEventStore(f"sqlite:///{tmp_path / 'p.db'}")
    try:
        return all(e.type != "TaskStarted" for e in store.read_all(0, 10_000))
    finally:
        store.close()


def fake_cli(tmp_path: Path, name: str, version_line: str) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    program = bin_dir / name
    program.write_text(f"#!/bin/sh\necho '{version_line}'\n")
    program.chmod(0o755)
    return program


def test_a_missing_agent_cli_is_refused_before_any_task_starts(tmp_path: Path) -> None:
    plan = {"agent": "codex", "tasks": [{"id": "a", "prompt": "do it"}]}
    ran = run_plan(tmp_path, plan, path=f"{tmp_path / 'empty'}:/usr/bin:/bin")
    assert ran.returncode == 2
    assert "Codex CLI (codex): the program 'codex' was not found on PATH" in ran.stderr
    assert "npm install -g @openai/codex" in ran.stderr
    assert "Traceback" not in ran.stderr
    assert no_task_started(tmp_path)


def test_an_agent_cli_of_a_version_plait_does_not_drive_is_refused(tmp_path: Path) -> None:
    program = fake_cli(tmp_path, "claude", "3.0.1 (Claude Code)")
    plan = {
        "profiles": {"new": {"agent": "claude", "program": str(program)}},
        "tasks": [{"id": "a", "prompt": "do it", "profile": "new"}],
    }
    ran = run_plan(tmp_path, plan, path=os.environ["PATH"])
    assert ran.returncode == 2
    assert f"Claude Code 3.0.1 at {program}: plait drives versions >= 2.1.0, < 2.2.0" in ran.stderr
    assert no_task_started(tmp_path)


def test_an_agent_cli_that_reports_no_version_is_refused(tmp_path: Path) -> None:
    program = fake_cli(tmp_path, "aider", "hello")
    plan = {
        "profiles": {"odd": {"agent": "aider", "program": str(program)}},
        "tasks": [{"id": "a", "prompt": "do it", "profile": "odd"}],
    }
    ran = run_plan(tmp_path, plan, path=os.environ["PATH"])
    assert ran.returncode == 2
    assert "did not report a version (hello)" in ran.stderr
