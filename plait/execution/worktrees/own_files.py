"""Whether a task's directory still holds the repository plait made for it.

A task runs with its own repository (isolated.py), but it can replace it: `.git` swapped for
a link to the user's, or for a gitfile naming it (as a linked worktree's does); `refs/` or
`objects/` linked into the user's; a `commondir` file, which makes git take refs and config
from elsewhere; `core.worktree` in its config, which points git at another checkout. Every
git command plait then ran in the task's directory (its `add`, `commit-tree`, the move of its
HEAD, a pooled slot's reset) would act on the user's repository. So before plait runs any git
there after the task ran, `problem` reads the files alone (no git process) and names what is
not plait's: the attempt fails, its files stay where the task left them, and plait runs no
git in it.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

__all__ = ["ForeignRepository", "check", "problem"]

# Files whose presence makes git read another repository's state (a linked worktree's).
_REDIRECTS = ("commondir", "gitdir")
# A config key that points git at another checkout (`core.worktree`): a key line
# `worktree = ...` or `worktree` alone, possibly after its section header on one line; and
# includes, which could hide one. (Hooks, a task's own `core.hooksPath` as husky sets, stay
# allowed: plait's git in a task's directory runs no hook, and a pooled slot's config and
# hooks are made anew before its next task.)
_KEYS = re.compile(r"^\s*(?:\[[^\]]*\]\s*)?(worktree)\s*(?:=|$)", re.IGNORECASE | re.MULTILINE)
_INCLUDES = re.compile(r"^\s*\[\s*include", re.IGNORECASE | re.MULTILINE)


class ForeignRepository(Exception):
    """The task's directory no longer holds the repository plait made for it."""

    def __init__(self, path: Path, why: str) -> None:
        self.path = path
        self.why = why
        super().__init__(
            f"the task's directory {path} holds not the repository plait made for it: {why}."
            " plait ran no git in it (it could reach your repository); its files stay there"
        )


def check(path: Path) -> None:
    """ForeignRepository unless `path` holds plait's own repository (see `problem`)."""
    why = problem(path)
    if why is not None:
        raise ForeignRepository(path, why)


def problem(path: Path) -> str | None:
    """What in `path`'s repository is not plait's, or None: the directory and its `.git`
    are real directories, nothing inside `.git` is a symbolic link, no file redirects git
    to another repository, and its config names no other worktree."""
    for place, what in ((path, "the task's directory"), (path / ".git", ".git")):
        try:
            mode = os.lstat(place).st_mode
        except OSError:
            return f"{what} is gone"
        if stat.S_ISLNK(mode):
            return f"{what} is a link to {os.readlink(place)}"
        if not stat.S_ISDIR(mode):
            return f"{what} is not a directory (a gitfile naming another repository?)"
    own = path / ".git"
    for name in _REDIRECTS:
        if os.path.lexists(own / name):
            return f".git/{name} redirects git to another repository"
    for directory, dirs, files in os.walk(own):
        for name in (*dirs, *files):
            entry = os.path.join(directory, name)
            if os.path.islink(entry):
                relative = os.path.relpath(entry, path)
                return f"{relative} is a link to {os.readlink(entry)}"
    for name in ("config", "config.worktree"):
        try:
            text = (own / name).read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            continue
        except OSError as exc:
            return f".git/{name} cannot be read ({exc})"
        if found := _KEYS.search(text):
            return f".git/{name} sets {found.group(1)}"
        if _INCLUDES.search(text):
            return f".git/{name} includes other config"
    return None
