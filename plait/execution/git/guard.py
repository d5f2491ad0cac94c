"""What a task must leave alone in the user's repository, snapshotted before and after it.

A task works in a repository of its own (worktrees/isolated.py), so its `git checkout`,
`git config` and hooks stay there by construction. What that cannot stop is a task that
names the user's repository by its path (`git -C /the/repo config ...`, a write into its
`.git`): `changes` says what such a task changed, and the task fails with it.

Watched: the repository's config files, its hooks and `info/` files, the user's global git
config, and every ref but plait's own (`refs/heads/plait/`, `refs/plait/`), the run's base
branch (the user may move it during a run: the landing handles that; a move to the task's
own work is the task's, `moved_exempt` and the task runner tell), remote-tracking refs
(an editor's background fetch) and the stash. Read from the files (no git process), so it
costs a task about a millisecond.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Snapshot", "changes", "moved_exempt", "snapshot"]

_SKIPPED_REFS = ("refs/heads/plait/", "refs/plait/", "refs/remotes/", "refs/stash")


@dataclass(frozen=True)
class Snapshot:
    refs: Mapping[str, str]
    files: Mapping[str, str]  # path -> sha256 of its bytes
    exempt: Mapping[str, str | None]  # the refs not watched (the base branch): their tips


def moved_exempt(before: Snapshot, after: Snapshot) -> dict[str, str]:
    """The exempt refs that moved (or were created) meanwhile, with their new tips: the
    caller tells the user's move from a task's (a move to the task's own work)."""
    return {
        ref: new
        for ref, new in after.exempt.items()
        if new is not None and new != before.exempt.get(ref)
    }


def snapshot(common_dir: Path, *, exempt: Sequence[str] = ()) -> Snapshot:
    """The refs and configuration files of the repository whose git common dir is
    `common_dir`; `exempt`: full ref names not to watch (the run's base branch)."""
    skipped = set(exempt)
    every = _refs(common_dir)
    refs = {
        name: sha
        for name, sha in every.items()
        if name not in skipped and not name.startswith(_SKIPPED_REFS)
    }
    files: dict[str, str] = {}
    for path in _watched_files(common_dir):
        try:
            files[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
        except (FileNotFoundError, NotADirectoryError):
            continue
        except OSError as exc:
            files[str(path)] = f"unreadable: {exc.strerror}"
    return Snapshot(refs, files, {name: every.get(name) for name in skipped})


def changes(before: Snapshot, after: Snapshot) -> list[str]:
    """What differs, one phrase each ("config: /repo/.git/config changed")."""
    found: list[str] = []
    for path in sorted(set(before.files) | set(after.files)):
        old, new = before.files.get(path), after.files.get(path)
        if old != new:
            what = "created" if old is None else "deleted" if new is None else "changed"
            kind = "hooks" if "/hooks/" in path else "config"
            found.append(f"{kind}: {path} {what}")
    for ref in sorted(set(before.refs) | set(after.refs)):
        old, new = before.refs.get(ref), after.refs.get(ref)
        if old != new:
            if old is None:
                found.append(f"ref {ref} created at {new}")
            elif new is None:
                found.append(f"ref {ref} deleted (was {old})")
            else:
                found.append(f"ref {ref} moved from {old} to {new}")
    return found


def _watched_files(common_dir: Path) -> list[Path]:
    paths = [common_dir / "config", common_dir / "config.worktree"]
    for directory in (common_dir / "hooks", common_dir / "info"):
        if directory.is_dir():
            paths += [p for p in sorted(directory.rglob("*")) if p.is_file()]
    home = Path(os.environ.get("HOME") or Path.home())
    config_home = Path(os.environ.get("XDG_CONFIG_HOME") or home / ".config")
    paths += [home / ".gitconfig", config_home / "git" / "config"]
    return paths


def _refs(common_dir: Path) -> dict[str, str]:
    """Every ref: packed ones, overridden by loose ones (as git reads them)."""
    refs: dict[str, str] = {}
    try:
        packed = (common_dir / "packed-refs").read_text(encoding="utf-8", errors="replace")
    except OSError:
        packed = ""
    for line in packed.splitlines():
        if line and line[0] not in "#^":
            sha, _, name = line.partition(" ")
            refs[name] = sha
    top = common_dir / "refs"
    for directory, dirs, names in os.walk(top):
        relative = Path(directory).relative_to(common_dir).as_posix()
        if f"{relative}/".startswith(("refs/heads/plait/", "refs/plait/", "refs/remotes/")):
            dirs[:] = []
            continue
        for name in names:
            path = Path(directory, name)
            try:
                text = path.read_text(encoding="utf-8", errors="replace").strip()
            except OSError:
                continue
            if not name.endswith(".lock"):
                refs[f"{relative}/{name}"] = text
    return refs
