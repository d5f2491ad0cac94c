"""What the CLI says when a command fails: one line, never a traceback.

Errors a user can act on (bad input, an unusable environment, a refused action) exit 2 with
their own message. Anything else is a bug: it is named in one line with the way to see its
traceback (PLAIT_DEBUG=1), and exits 70 (EX_SOFTWARE).
"""

from __future__ import annotations

import os
import sys
import traceback

DEBUG_ENV = "PLAIT_DEBUG"
INTERNAL = 70


class UsageError(Exception):
    """Input the command cannot use; the message says what to give instead."""


def _user_errors() -> tuple[type[BaseException], ...]:
    """The error classes whose message is meant for the user. Only modules already loaded
    can have raised one, so nothing is imported here that the command did not import."""
    found: list[type[BaseException]] = [UsageError, OSError]
    for module, names in (
        ("plait.domain.errors", ("DomainError", "PlanError")),
        ("plait.execution.errors", ("ServiceError",)),
        ("plait.eventstore.errors", ("StoreError",)),
        ("plait.execution.git.cli", ("GitError",)),
        ("plait.execution.worktrees.manager", ("WorktreeError",)),
        ("plait.execution.planning", ("PlanningFailed",)),
    ):
        loaded = sys.modules.get(module)
        found += [getattr(loaded, name) for name in names if loaded is not None]
    return tuple(found)


def explain(exc: BaseException) -> tuple[str, int]:
    if isinstance(exc, _user_errors()):
        if isinstance(exc, FileNotFoundError) and exc.filename:
            # A program that is not installed (git, an agent CLI) or a file that is not there.
            return f"{exc.filename}: not found ({exc.strerror})", 2
        return str(exc) or type(exc).__name__, 2
    if os.environ.get(DEBUG_ENV):
        traceback.print_exception(exc)
    return (
        f"internal error: {type(exc).__name__}: {exc} (run again with {DEBUG_ENV}=1 to see where)",
        INTERNAL,
    )
