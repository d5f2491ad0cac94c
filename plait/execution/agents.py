"""Turn a task's agent choice into a command: a preset, a custom argv template, or `shell`.

Placeholders ({prompt}, {task_id}, {title}) are substituted inside single argv
elements in one pass, so the prompt is always exactly one argument and text
inside the prompt that looks like a placeholder is left alone. Nothing here
builds a shell string, except `shell`, which runs the user's own `run` line.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

__all__ = ["PRESETS", "SHELL_AGENT", "Command", "build_command"]

SHELL_AGENT = "shell"

# From each tool's own documentation; keep this a table, not code.
PRESETS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "claude": (
            "claude", "-p", "{prompt}",
            "--permission-mode", "acceptEdits",
            "--output-format", "stream-json", "--verbose",
        ),
        "codex": ("codex", "exec", "--full-auto", "{prompt}"),
        "aider": ("aider", "--message", "{prompt}", "--yes-always", "--no-stream"),
    }
)  # fmt: skip

_PLACEHOLDER = re.compile(r"\{(prompt|task_id|title)\}")


@dataclass(frozen=True)
class Command:
    argv: list[str] | None  # run directly, never through a shell
    shell: str | None  # the user's own command line, run with /bin/sh -c


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
    if agent not in PRESETS:
        known = ", ".join([*sorted(PRESETS), SHELL_AGENT])
        raise ValueError(f"unknown agent preset {agent!r}; known presets: {known}")
    return PRESETS[agent]


def build_command(
    agent: str | Sequence[str],
    task_prompt: str,
    task_id: str,
    title: str,
    run: str | None = None,
) -> Command:
    """The command for one task. `agent` is a preset name, `shell`, or an argv template."""
    if agent == SHELL_AGENT:
        if not run:
            raise ValueError(f"task {task_id!r}: agent 'shell' needs a run command")
        return Command(argv=None, shell=run)
    values = {"prompt": task_prompt, "task_id": task_id, "title": title}
    return Command(argv=[_substitute(e, values) for e in _template(agent)], shell=None)
