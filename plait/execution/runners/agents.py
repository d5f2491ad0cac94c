"""Turn a task's runner into a command and an environment: a preset (with its profile), a
custom argv template, or `shell`.

Placeholders ({prompt}, {task_id}, {title}, {model}, {session}, {scratch}) are
substituted inside single argv elements in one pass, so the prompt is always exactly one
argument and text inside the prompt that looks like a placeholder is left alone. Nothing
here builds a shell string, except `shell`, which runs the user's own `run` line.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from plait.domain.agents import PRESETS, SHELL, AgentPreset, is_provider_env, passes
from plait.domain.plan.model import Profile

__all__ = ["PRESETS", "SHELL_AGENT", "Command", "agent_env", "build_command", "preset_of"]

SHELL_AGENT = SHELL

OPTIONS = "{options}"  # where a template takes the model and the profile's arguments
_PLACEHOLDER = re.compile(r"\{(prompt|task_id|title|model|session|scratch)\}")
_ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(frozen=True)
class Command:
    argv: list[str] | None  # run directly, never through a shell
    shell: str | None  # the user's own command line, run with /bin/sh -c
    preset: AgentPreset | None = None  # the preset it runs, if any: its output is parsed
    profile: Profile | None = None
    model: str = ""
    extra_env: Mapping[str, str] = field(default_factory=dict)


def preset_of(agent: str | Sequence[str]) -> AgentPreset | None:
    return PRESETS.get(agent) if isinstance(agent, str) else None


def _as_argument(value: str) -> str:
    # A whole argument starting with '-' would be read as an option by the
    # agent's CLI (`--dangerously-skip-permissions`, or `-`, which makes
    # `codex exec` read stdin); a leading space keeps it a plain argument.
    return f" {value}" if value.startswith("-") else value


def _substitute(element: str, values: Mapping[str, str]) -> str:
    if _PLACEHOLDER.fullmatch(element):
        return _as_argument(values[element[1:-1]])
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], element)


def _template(agent: str | Sequence[str]) -> Sequence[str]:
    if not isinstance(agent, str):
        template = list(agent)
        if not template or not template[0] or _PLACEHOLDER.search(template[0]):
            raise ValueError("a custom agent template needs a fixed program name first")
        return template
    preset = PRESETS.get(agent)
    if preset is None:
        known = ", ".join([*sorted(PRESETS), SHELL_AGENT])
        raise ValueError(f"unknown agent preset {agent!r}; known presets: {known}")
    return (preset.program, *preset.args)


def build_command(
    agent: str | Sequence[str],
    task_prompt: str,
    task_id: str,
    title: str,
    run: str | None = None,
    *,
    profile: Profile | None = None,
    scratch: Path | None = None,
    session: str | None = None,
) -> Command:
    """The command for one task. `agent` is a preset name, `shell`, or an argv template.

    With `session`, a preset that can resume a session continues that one with the
    prompt (conflict resolution); ValueError if it cannot.
    """
    if agent == SHELL_AGENT:
        if not run:
            raise ValueError(f"task {task_id!r}: agent 'shell' needs a run command")
        return Command(argv=None, shell=run, profile=profile)
    preset = preset_of(agent)
    model = (profile.model if profile else None) or ""
    values = {
        "prompt": task_prompt,
        "task_id": task_id,
        "title": title,
        "model": model,
        "session": session or "",
        "scratch": str(scratch) if scratch is not None else "",
    }
    if preset is not None and session is not None:
        if preset.resume_args is None:
            raise ValueError(f"{preset.title} cannot resume a session")
        template: Sequence[str] = (preset.program, *preset.resume_args)
    else:
        template = _template(agent)
    options: list[str] = []
    if preset is not None and model:
        options += [_substitute(element, values) for element in preset.model_args]
    if profile is not None:
        options += profile.args  # the user's own arguments: no placeholders in them
    argv: list[str] = []
    for element in template:
        if element == OPTIONS:
            argv += options
            options = []
        else:
            argv.append(_substitute(element, values))
    argv += options  # a template without {options}: at the end
    if profile is not None and profile.program:
        argv[0] = profile.program
    return Command(argv=argv, shell=None, preset=preset, profile=profile, model=model)


def agent_env(
    base: Mapping[str, str], command: Command, *, as_root: bool | None = None
) -> dict[str, str]:
    """The environment a task gets of `base` (already without plait's own variables).

    Provider credentials and settings are withheld unless the task's preset or profile
    asks for them, so a shell task or another provider's agent never sees a key it has no
    use for. Then the preset's fixed settings, the profile's `env` (with `${NAME}` read
    from `base`) and its `drop_env`.
    """
    preset, profile = command.preset, command.profile
    allowed = (*(preset.provider_env if preset else ()), *(profile.pass_env if profile else ()))
    env = {k: v for k, v in base.items() if not is_provider_env(k) or passes(allowed, k)}
    if preset is not None:
        env.update(preset.env)
        if as_root if as_root is not None else os.geteuid() == 0:
            env.update(preset.root_env)
    if profile is not None:
        for name, value in profile.env:
            env[name] = _ENV_REFERENCE.sub(lambda m: base.get(m.group(1), ""), value)
        for name in profile.drop_env:
            env.pop(name, None)
    return env
