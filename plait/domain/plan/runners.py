"""Which runner a plan or task names: the shell, a preset, or a custom argv template."""

from __future__ import annotations

from plait.domain.agents import SHELL
from plait.domain.plan.fields import MAX_TEXT, FieldReader, show
from plait.domain.plan.model import BUILTIN_AGENTS, PROMPT_PLACEHOLDER, Agent

__all__ = ["check_runner", "read_agent"]


def read_agent(fields: FieldReader) -> Agent | None:
    """A preset name or a custom argv template; None if absent or invalid (already reported)."""
    value = fields.get("agent")
    if value is None:
        return None
    if isinstance(value, str):
        if value in BUILTIN_AGENTS:
            return value
        fields.problem(
            f"unknown agent {show(value)}: use one of {', '.join(BUILTIN_AGENTS)},"
            f" or a list of argv strings with {PROMPT_PLACEHOLDER!r} in one of them"
        )
        return None
    template = fields.text_list("agent", what="argv strings", max_len=MAX_TEXT)
    if template is None or not isinstance(value, list | tuple) or len(template) != len(value):
        return None  # the reader has said what is wrong
    if not any(PROMPT_PLACEHOLDER in arg for arg in template):
        fields.problem(f"a custom 'agent' must have {PROMPT_PLACEHOLDER!r} in one of its arguments")
        return None
    return template


def check_runner(fields: FieldReader, agent: Agent | None) -> None:
    """The shell runner needs `run`; every agent needs a `prompt` and has no use for `run`."""
    if agent is None:
        return  # the plan's agent is invalid and reported; no runner to check against
    has_run = fields.get("run") is not None
    if agent == SHELL:
        if not has_run:
            fields.problem("the shell runner needs a 'run' command")
        return
    name = show(agent) if isinstance(agent, str) else "the custom agent"
    if fields.get("prompt") is None:
        fields.problem(f"agent {name} needs a 'prompt'")
    if has_run:
        fields.problem(f"'run' is only for the shell runner, but this task's agent is {name}")
