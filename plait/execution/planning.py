"""Session 0: a plan made by a planning command (an agent CLI, or any command).

The command runs in a detached worktree of the repository's HEAD (so it can read the code
but cannot touch the user's checkout), with the spec in its prompt and environment. It
writes the plan to `plait-plan.yaml` in its working directory, or prints it on stdout. The
text is validated like any plan file; a command that fails, or a plan with problems, stops
everything before a run exists.

    plait run --plan-from claude --spec SPEC.md         # a preset: the agent writes the plan
    plait run --plan-from 'my-planner --out "$PLAIT_PLAN_OUTPUT"' --spec SPEC.md
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from pathlib import Path

from plait.domain.agents import PRESETS, preset_names
from plait.domain.errors import PlanError
from plait.domain.plan.model import Plan, Profile, Task
from plait.domain.plan.parsing import load_plan_text, plan_from_mapping
from plait.domain.plan.profiles import read_profiles
from plait.execution.git.cli import Git
from plait.execution.runners.agent_check import (
    AgentCheckFailed,
    AgentInfo,
    check_agents,
    with_own_tools,
)
from plait.execution.runners.agent_output import LineFeed, parser_for
from plait.execution.runners.agents import agent_env, build_command
from plait.execution.runners.processes import run_process, task_env
from plait.execution.worktrees.manager import WorktreeManager, worktree_root_for

PLAN_FILE = "plait-plan.yaml"
MAX_PLAN_OUTPUT = 1024 * 1024  # what is kept of a planning command's stdout
DEFAULT_TIMEOUT = 1800.0

PROMPT = """\
You are planning work for plait, which runs coding tasks in parallel git worktrees.
Read the specification below and the repository in the current directory, then write a
plan file named {plan_file} in the current directory and nothing else. Do not change any
other file.

The plan is YAML: a top-level mapping with `tasks:`, a list of tasks, each with
`id` (lowercase letters, digits, '-' or '_'), `title`, `prompt` (what a coding agent should
do, self-contained), optional `depends_on` (ids of tasks that must land first) and optional
`files` (paths the task will touch; tasks sharing a file never run at the same time).
Optional top-level keys: `test_command` (the project's test command), `agent`
({agents}: the agent that runs the tasks), `max_concurrency`.
Keep tasks independent where you can: independent tasks run in parallel.

Specification:
{spec}
"""


class PlanningFailed(Exception):
    """The planning command could not produce a plan (it failed, timed out, wrote nothing)."""


@dataclass(frozen=True)
class PlanFromCommand:
    plan: Plan
    source: str  # what made it, for PlanAccepted.source


async def plan_from_command(
    repo: Path,
    command: str,
    spec: Path | None,
    *,
    worktree_root: Path | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    user_profiles: object = None,
) -> PlanFromCommand:
    spec_text = _read_spec(spec)
    planner = _planner(command, user_profiles)
    info = await _check_planner(planner) if planner is not None else None
    git = Git(repo)
    worktrees = WorktreeManager(git, await worktree_root_for(git, worktree_root))
    head = await git.rev_parse("HEAD")
    where = (await worktrees.root()) / "_planning" / uuid.uuid4().hex[:12]
    worktree = await worktrees.create_detached(where, head)
    try:
        prompt = PROMPT.format(
            plan_file=PLAN_FILE,
            spec=spec_text or "(no specification given)",
            agents=", ".join(preset_names()),
        )
        output = worktree.path / PLAN_FILE
        env = task_env(
            os.environ,
            {
                "PLAIT_TASK_PROMPT": prompt,
                "PLAIT_WORKTREE": str(worktree.path),
                "PLAIT_SPEC": str(spec.resolve()) if spec else "",
                "PLAIT_PLAN_OUTPUT": str(output),
            },
        )
        stdout: list[str] = []
        kept = 0

        def collect(stream: str, text: str) -> None:
            nonlocal kept
            if stream == "stdout" and kept < MAX_PLAN_OUTPUT:
                stdout.append(text)
                kept += len(text)

        verdict = ""
        if planner is not None:
            preset = PRESETS[str(planner.agent)]
            built = build_command(
                planner.agent,
                prompt,
                "plan",
                "Plan the work",
                profile=planner,
                scratch=worktree.path.parent,
            )
            feed = LineFeed(parser_for(preset.output))

            def collect_and_parse(stream: str, text: str) -> None:
                feed.add(stream, text)
                collect(stream, text)

            result = await run_process(
                built.argv,
                cwd=worktree.path,
                env=with_own_tools(agent_env(env, built), info),
                timeout=timeout,
                on_output=collect_and_parse,
            )
            verdict = feed.report().error
            stdout.clear()  # an agent's stdout is its session log, never the plan
        else:  # the user's own command line, run by a shell on purpose
            result = await run_process(
                shell_command=command,
                cwd=worktree.path,
                env=env,
                timeout=timeout,
                on_output=collect,
            )
        if not result.succeeded:
            how = "timed out" if result.timed_out else f"exited with {result.exit_code}"
            tail = verdict or "\n".join(result.output_tail.strip().splitlines()[-15:])
            raise PlanningFailed(f"the planning command {how}:\n{tail}")
        if verdict:
            raise PlanningFailed(f"the planning agent failed: {verdict}")
        text = output.read_text(encoding="utf-8") if output.exists() else "".join(stdout)
        if not text.strip():
            raise PlanningFailed(
                f"the planning command wrote no plan ({PLAN_FILE} is missing, stdout is empty)"
            )
        source = f"planned by {command!r}"
        data = load_plan_text(text, source=source)
        if planner is not None:
            data = _with_explicit_runners(data, command, is_profile=command not in PRESETS)
        return PlanFromCommand(plan_from_mapping(data, user_profiles=user_profiles), source)
    finally:
        await worktrees.remove(worktree)


def _planner(command: str, user_profiles: object) -> Profile | None:
    """A preset, or a profile of the user's profiles file that runs one; None: the user's
    own shell command."""
    if command in PRESETS:
        return Profile(name=command, agent=command)
    problems: list[str] = []
    profiles = {p.name: p for p in read_profiles(None, user_profiles, problems)}
    profile = profiles.get(command)
    if profile is None:
        return None
    if problems:
        raise PlanningFailed("; ".join(problems))
    if not isinstance(profile.agent, str) or profile.agent not in PRESETS:
        raise PlanningFailed(f"profile {command!r} does not run an agent preset")
    return profile


async def _check_planner(planner: Profile) -> AgentInfo | None:
    """The planning agent is installed, in a version plait drives: refused up front."""
    task = Task(id="plan", prompt="plan", profile=planner.name)
    try:
        found = await check_agents(Plan(tasks=(task,), profiles=(planner,)))
    except AgentCheckFailed as exc:
        raise PlanningFailed("; ".join(exc.problems)) from None
    return next(iter(found.values()), None)


def _with_explicit_runners(data: object, planner: str, *, is_profile: bool) -> object:
    """Every planned task names its runner: the planning agent's (or its profile), unless
    the planner chose one, for the task or for the plan as a whole."""
    if not isinstance(data, dict) or not isinstance(data.get("tasks"), list):
        return data  # not a plan: the check reports it
    default = {"agent": data["agent"]} if data.get("agent") else None
    default = default or ({"profile": planner} if is_profile else {"agent": planner})
    tasks = [
        {**task, **default}
        if isinstance(task, dict) and task.get("agent") is None and task.get("profile") is None
        else task
        for task in data["tasks"]
    ]
    return {**data, "tasks": tasks}


def _read_spec(spec: Path | None) -> str:
    if spec is None:
        return ""
    try:
        return spec.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PlanError([f"cannot read the spec {str(spec)!r}: {exc}"]) from None
