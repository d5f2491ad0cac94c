"""Ids and the names plait gives to refs: one home for both rules.

An id (a project's, a run's, a task's, a profile's) is lowercase letters, digits, `_` and
`-`, starting with a letter or a digit, at most 63 characters. That is safe as a path
component, a ref component and a URL segment, so an id is checked against it before it
reaches git, the filesystem or a route.

A run's branches are `plait/<run>/<task>` for its tasks and `plait/<run>/_result` for its
tested result (not `plait/<run>` itself: git cannot hold a ref and refs below it; `_` starts
no id, so no task's branch can be the result's).
"""

from __future__ import annotations

import re
from typing import Final

ID_REGEX: Final = "[a-z0-9][a-z0-9_-]{0,62}"
ID_PATTERN: Final = re.compile(ID_REGEX)
BRANCH_ROOT: Final = "plait"


class InvalidIdError(ValueError):
    def __init__(self, kind: str, value: object) -> None:
        self.kind = kind
        self.value = value
        super().__init__(f"invalid {kind} {value!r}: must match {ID_REGEX}")


def validate_id(kind: str, value: object) -> str:
    """`value` when it is a valid id; InvalidIdError naming `kind` otherwise."""
    if not isinstance(value, str) or not ID_PATTERN.fullmatch(value):
        raise InvalidIdError(kind, value)
    return value


def run_branches(run_id: str) -> str:
    """The prefix of every branch of the run (its tasks' and its result's)."""
    return f"{BRANCH_ROOT}/{validate_id('run id', run_id)}/"


def task_branch(run_id: str, task_id: str) -> str:
    return run_branches(run_id) + validate_id("task id", task_id)


def result_branch(run_id: str) -> str:
    """The run's integration branch, where its tested result grows batch by batch."""
    return run_branches(run_id) + "_result"
