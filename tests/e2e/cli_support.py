"""The `plait` console script as a user runs it: a subprocess of the installed script, with
its own data directory and SQLite file, never the user's."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PLAIT = str(Path(sys.executable).with_name("plait"))


@dataclass(frozen=True)
class Ran:
    code: int
    out: str
    err: str

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.out.splitlines() if line.strip()]

    def hint(self, words: str) -> list[str]:
        """The argv of the printed command `... plait WORDS ...`, exactly as printed: its
        program is `plait` when that is the one on PATH, else the full path of this one."""
        for line in self.out.splitlines():
            found = line.find(f"plait {words}")
            if found >= 0:
                start = line.rfind(" ", 0, found) + 1  # the program's own word
                return shlex.split(line[start:])
        raise AssertionError(f"no `plait {words}` hint in:\n{self.out}")


def environment(home: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PLAIT_", "GIT_"))}
    env.update({"XDG_DATA_HOME": str(home), "COLUMNS": "200", "NO_COLOR": "1"})
    # The demo's test command is pytest: spare it loading this environment's plugins.
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    env.update(extra or {})
    return env


def run_plait(
    home: Path, argv: list[str], *, env: Mapping[str, str] | None = None, cwd: Path | None = None
) -> Ran:
    """`argv` as given, its first word `plait` being the installed script."""
    program = [PLAIT if argv[0] == "plait" else argv[0], *argv[1:]]
    done = subprocess.run(
        program,
        env=environment(home, env),
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        check=False,
        timeout=240,
        cwd=cwd,
    )
    return Ran(done.returncode, done.stdout, done.stderr)


def plait(home: Path, db: str, *args: str, env: Mapping[str, str] | None = None) -> Ran:
    return run_plait(home, ["plait", *args, "--db", db], env=env)


def write_plan(path: Path, **plan: Any) -> str:
    path.write_text(json.dumps({"retries": 0, **plan}))
    return str(path)


def writes(task_id: str, name: str, *depends_on: str) -> dict[str, Any]:
    return {"id": task_id, "run": f"echo {task_id} > {name}", "depends_on": list(depends_on)}
