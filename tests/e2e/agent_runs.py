"""`plait run` as a user runs it, driving the REAL agent CLIs against the fake provider.

Each preset gets what a user would configure to point it at their provider: environment
variables, or a profile in the plan (docs/agents.md). Only the model is fake.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.fakemodel.agents import agent_binary, agents_bin_dir
from tests.fakemodel.server import FakeModelServer

PLAIT = str(Path(sys.executable).with_name("plait"))


@dataclass(frozen=True)
class AgentSetup:
    """How the tests point one preset at the fake provider, as a user would."""

    preset: str
    model: str
    env: Callable[[FakeModelServer, Path], dict[str, str]]
    profile_extra: Callable[[FakeModelServer], dict[str, Any]]
    reports_cost: bool
    resumes: bool  # continues its own session to resolve a conflict


def _claude_env(fake: FakeModelServer, home: Path) -> dict[str, str]:
    return {
        "ANTHROPIC_BASE_URL": fake.url,
        "ANTHROPIC_API_KEY": "sk-ant-fake-plait-tests",
        "CLAUDE_CONFIG_DIR": str(home / "claude-config"),
        # A provider error fails at once instead of after ten backed-off retries.
        "CLAUDE_CODE_MAX_RETRIES": "0",
    }


def _no_extra(fake: FakeModelServer) -> dict[str, Any]:
    return {}


def _codex_env(fake: FakeModelServer, home: Path) -> dict[str, str]:
    (home / "codex-home").mkdir(exist_ok=True)  # codex refuses a CODEX_HOME that is not there
    return {"CODEX_HOME": str(home / "codex-home"), "FAKE_PROVIDER_KEY": "sk-fake-plait-tests"}


def _codex_provider(fake: FakeModelServer) -> dict[str, Any]:
    """A custom provider, as a user points Codex at their gateway: `-c` overrides in the
    profile's args, the key's variable let through by `pass_env`."""
    settings = {
        "model_provider": '"fake"',
        "model_providers.fake.name": '"fake"',
        "model_providers.fake.base_url": f'"{fake.url}/v1"',
        "model_providers.fake.env_key": '"FAKE_PROVIDER_KEY"',
        "model_providers.fake.wire_api": '"responses"',
        # A provider error fails at once instead of after retries.
        "model_providers.fake.request_max_retries": "0",
        "model_providers.fake.stream_max_retries": "0",
    }
    args = [item for key, value in settings.items() for item in ("-c", f"{key}={value}")]
    return {"args": args, "pass_env": ["FAKE_PROVIDER_KEY"]}


def _aider_env(fake: FakeModelServer, home: Path) -> dict[str, str]:
    return {"OPENAI_API_BASE": f"{fake.url}/v1", "OPENAI_API_KEY": "sk-fake-plait-tests"}


SETUPS: dict[str, AgentSetup] = {
    "claude": AgentSetup("claude", "claude-sonnet-4-5", _claude_env, _no_extra, True, True),
    "codex": AgentSetup("codex", "gpt-5.5", _codex_env, _codex_provider, False, True),
    "aider": AgentSetup("aider", "openai/gpt-4o-mini", _aider_env, _no_extra, True, False),
}


@dataclass(frozen=True)
class Ran:
    code: int
    out: str
    err: str

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.out.splitlines() if line.startswith("{")]

    def of_type(self, name: str) -> list[dict[str, Any]]:
        return [e for e in self.events() if e.get("type") == name]


class AgentRun:
    """One user: a home, a data directory, a database, a repository, and the fake."""

    def __init__(self, tmp_path: Path, fake: FakeModelServer, setup: AgentSetup) -> None:
        agent_binary(setup.preset)  # fail (CI) or skip (locally) when it is not installed
        self.root = tmp_path
        self.fake = fake
        self.setup = setup
        self.home = tmp_path / "home"
        self.home.mkdir(exist_ok=True)
        self.db = f"sqlite:///{tmp_path / 'plait.db'}"

    def env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        keep = ("PATH", "LANG", "LC_ALL", "TMPDIR", "USER", "LOGNAME", "SHELL", "TERM")
        env = {k: v for k, v in os.environ.items() if k in keep}
        env.update(
            {
                "HOME": str(self.home),
                "XDG_DATA_HOME": str(self.home / "data"),
                "XDG_CONFIG_HOME": str(self.home / "config"),
                "XDG_CACHE_HOME": str(self.home / "cache"),
                "PATH": f"{agents_bin_dir()}{os.pathsep}{os.environ.get('PATH', '')}",
                "COLUMNS": "200",
                "NO_COLOR": "1",
                "PYTHONDONTWRITEBYTECODE": "1",
            }
        )
        env.update(self.setup.env(self.fake, self.home))
        env.update(extra or {})
        return env

    def profile(self, **more: Any) -> dict[str, Any]:
        return {
            "agent": self.setup.preset,
            "model": self.setup.model,
            **self.setup.profile_extra(self.fake),
            **more,
        }

    def write_profiles_file(self, profiles: dict[str, Any]) -> Path:
        path = self.home / "config" / "plait" / "profiles.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"profiles": profiles}))  # JSON is YAML
        return path

    def plan(self, tasks: list[dict[str, Any]], **fields: Any) -> dict[str, Any]:
        """A plan whose tasks run this preset through the `agent` profile."""
        return {
            "retries": 0,
            "profiles": {"agent": self.profile()},
            "tasks": [{"profile": "agent", **task} for task in tasks],
            **fields,
        }

    def plait(self, *args: str, extra_env: Mapping[str, str] | None = None) -> Ran:
        done = subprocess.run(
            [PLAIT, *args, "--db", self.db],
            env=self.env(extra_env),
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            check=False,
            timeout=600,
        )
        return Ran(done.returncode, done.stdout, done.stderr)

    def run(self, repo: Path, plan: dict[str, Any], *more: str, as_json: bool = True) -> Ran:
        path = self.root / f"plan-{len(list(self.root.glob('plan-*')))}.json"
        path.write_text(json.dumps(plan))
        output = ("--json",) if as_json else ()
        return self.plait("run", str(path), "--repo", str(repo), *output, *more)
