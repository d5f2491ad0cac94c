"""Whether a task's directory still holds the repository plait made for it.

A task runs with its own repository (isolated.py), but it can replace it: `.git` swapped for
a link to the user's, or for a gitfile naming it (as a linked worktree's does); `refs/` or
`objects/` linked into the user's; a `commondir` file, which makes git take refs and config
from elsewhere; `core.worktree` in its config, which points git at another checkout. Every
git command plait then ran in the task's directory (its `add`, `commit-tree`, the move of its
HEAD, a pooled slot's reset) would act on the user's repository. And its config can make
plait's git run a command of the task's choosing, outside any sandbox (`core.fsmonitor`, a
filter's `clean`: `add` and `write-tree` run them). So before plait runs any git
there after the task ran, `problem` reads the files alone (no git process) and names what is
not plait's: the attempt fails, its files stay where the task left them, and plait runs no
git in it.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

__all__ = ["ForeignRepository", "check", "problem"]

# Files whose presence makes git read another repository's state (a linked worktree's).
_REDIRECTS = ("commondir", "gitdir")
# Values of core.fsmonitor that name git's own monitor or none, not a command.
_BOOLEANS = {"", "true", "false", "yes", "no", "on", "off", "1", "0"}


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
    to another repository, and its config points git nowhere else and names no command."""
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
        if why := _config_problem(text):
            return f".git/{name} {why}"
    return None


def _config_problem(text: str) -> str | None:
    """What in a config file points git elsewhere (core.worktree, includes, which could hide
    it) or makes plait's git run a command the task chose (a file monitor, a filter: `add`
    and `write-tree` run them). Hooks stay allowed, a task's own `core.hooksPath` as husky
    sets: no git plait runs in a task's directory runs a hook, and a pooled slot's config
    and hooks are made anew before its next task."""
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("["):
            header, _, line = line[1:].partition("]")
            section = header.strip().lower().replace('"', " ").replace(".", " ").split(" ")[0]
            if section in ("include", "includeif"):
                return "includes other config"
            line = line.strip()
        if not line or line[0] in "#;":
            continue
        key, has_value, value = line.partition("=")
        key, value = key.strip().lower(), value.strip().strip('"').lower()
        if section == "core" and key == "worktree":
            return "sets core.worktree"
        if section == "core" and key == "fsmonitor" and has_value and value not in _BOOLEANS:
            return "sets core.fsmonitor to a command"
        if section == "filter" and key in ("clean", "smudge", "process"):
            return f"sets a filter's {key} command"
    return None
