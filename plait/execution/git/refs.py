"""Ref-name validation done in Python, before a name ever reaches a git argv.

The rules are those of `git check-ref-format` (git 2.39), plus two of ours:
no component may start with '-' (so a name can never be read as an option such
as `--upload-pack=x`) and names have a length limit (they become file names
under .git/refs and worktree directories).
"""

from __future__ import annotations

import re

MAX_COMPONENT_LENGTH = 200
MAX_REF_LENGTH = 1000

# Control characters, DEL, and the characters check-ref-format forbids anywhere.
_FORBIDDEN_CHARS = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]")


class InvalidRefName(ValueError):
    """A branch or ref name that git would refuse, or that could be read as an option."""

    def __init__(self, name: str, reason: str) -> None:
        self.name = name
        self.reason = reason
        super().__init__(f"invalid ref name {name!r}: {reason}")


def _component_problem(component: str) -> str | None:
    if not component:
        return "empty component (leading, trailing or doubled '/')"
    if len(component) > MAX_COMPONENT_LENGTH:
        return f"component longer than {MAX_COMPONENT_LENGTH} characters"
    if component.startswith("-"):
        return "starts with '-' and could be read as an option"
    if component.startswith("."):
        return "component starts with '.'"
    if component.endswith(".lock"):
        return "component ends with '.lock'"
    return None


def _whole_name_problem(name: str) -> str | None:
    if not name:
        return "empty name"
    if len(name) > MAX_REF_LENGTH:
        return f"longer than {MAX_REF_LENGTH} characters"
    if _FORBIDDEN_CHARS.search(name):
        return "contains a control character, space or one of ~ ^ : ? * [ \\"
    if ".." in name:
        return "contains '..'"
    if "@{" in name:
        return "contains '@{'"
    if name == "@":
        return "is '@'"
    if name.endswith("."):
        return "ends with '.'"
    return None


def validate_ref_component(name: str) -> str:
    """Return `name` if it is a safe single ref component (no '/'), else raise InvalidRefName."""
    if "/" in name:
        raise InvalidRefName(name, "contains '/' where a single component is expected")
    problem = _whole_name_problem(name) or _component_problem(name)
    if problem:
        raise InvalidRefName(name, problem)
    return name


def validate_ref_name(name: str) -> str:
    """Return `name` if it is a safe slash-separated ref or branch name, else raise InvalidRefName.

    Accepts both short branch names (`plait/run/task`) and full refs
    (`refs/heads/main`); it does not decide which of the two the caller wanted.
    """
    problem = _whole_name_problem(name)
    for component in name.split("/"):
        problem = problem or _component_problem(component)
    if problem:
        raise InvalidRefName(name, problem)
    return name
