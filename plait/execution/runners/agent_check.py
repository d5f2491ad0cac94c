"""Before a run: is every agent CLI the plan needs installed, in a version plait knows how
to drive? A missing binary or an unknown version is refused up front (exit 2, naming
it), never discovered by a task that then fails for a reason that is not its own."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from plait.domain.agents import (
    AgentPreset,
    parse_version,
    show_version,
    supported,
    supported_text,
)
from plait.domain.plan.model import Plan
from plait.execution.runners.agents import preset_of

__all__ = ["AgentCheckFailed", "AgentInfo", "check_agents", "with_own_tools"]

VERSION_TIMEOUT = 60.0  # a CLI's first start may unpack itself (npm's codex does)


class AgentCheckFailed(Exception):
    """One or more agent CLIs cannot be used; the message names each and the fix."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


@dataclass(frozen=True)
class AgentInfo:
    preset: str
    program: str  # resolved path
    version: str
    path_prepend: tuple[str, ...] = ()  # the CLI's own tool directories, first on PATH


async def check_agents(plan: Plan, env: dict[str, str] | None = None) -> dict[str, AgentInfo]:
    """The agents `plan` uses, keyed by program as the tasks will run it."""
    wanted: dict[str, AgentPreset] = {}
    for task in plan.tasks:
        preset = preset_of(plan.agent_for(task))
        if preset is None:
            continue
        profile = plan.profile_for(task)
        program = profile.program if profile and profile.program else preset.program
        wanted[program] = preset
    env = dict(os.environ if env is None else env)
    results = await asyncio.gather(*(_probe(p, preset, env) for p, preset in wanted.items()))
    problems = [r for r in results if isinstance(r, str)]
    if problems:
        raise AgentCheckFailed(problems)
    return {
        program: info
        for program, info in zip(wanted, results, strict=True)
        if isinstance(info, AgentInfo)
    }


async def _probe(program: str, preset: AgentPreset, env: dict[str, str]) -> AgentInfo | str:
    path = shutil.which(program, path=env.get("PATH"))
    versions = supported_text(preset)
    if path is None:
        where = "" if "/" in program else " on PATH"
        return (
            f"{preset.title} ({preset.name}): the program {program!r} was not found{where};"
            f" install it ({preset.install}); plait drives versions {versions}"
        )
    try:
        proc = await asyncio.create_subprocess_exec(
            path,
            "--version",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        out, _ = await asyncio.wait_for(proc.communicate(), VERSION_TIMEOUT)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return f"{preset.title}: `{path} --version` did not answer in {VERSION_TIMEOUT:.0f} s"
    except OSError as exc:
        return f"{preset.title}: cannot run {path}: {exc.strerror or exc}"
    text = out.decode(errors="replace").strip()
    found = re.search(preset.version_pattern, text, re.M)
    if proc.returncode != 0 or found is None:
        first = text.splitlines()[0] if text else f"exit status {proc.returncode}"
        return f"{preset.title}: `{path} --version` did not report a version ({first[:200]})"
    version = parse_version(found.group(1))
    if not supported(preset, version):
        return (
            f"{preset.title} {show_version(version)} at {path}: plait drives versions"
            f" {versions}; install one of those ({preset.install}@VERSION)"
        )
    return AgentInfo(
        preset.name, str(Path(path)), show_version(version), _own_tools(preset, Path(path))
    )


def with_own_tools(env: dict[str, str], info: AgentInfo | None) -> dict[str, str]:
    """`env` with the CLI's own tool directories first on PATH."""
    if info is not None and info.path_prepend:
        env["PATH"] = os.pathsep.join([*info.path_prepend, env.get("PATH", "")])
    return env


def _own_tools(preset: AgentPreset, program: Path) -> tuple[str, ...]:
    home = program.resolve().parent
    found = []
    for pattern in preset.path_prepend:
        matches = sorted(home.glob(pattern))
        if matches:
            found.append(str(matches[0].resolve()))
    return tuple(found)
