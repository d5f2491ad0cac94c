"""A task's directory read and removed from its files alone (recovery, the pool and `plait
clean` look at many): the branch and commit its HEAD names, and its removal with whatever
the task made read-only. No git process: what is in it may no longer be plait's (own_files).
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

__all__ = ["head_of", "remove", "remove_quietly"]


def remove_quietly(path: Path) -> None:
    with contextlib.suppress(OSError):
        remove(path)


def head_of(path: Path) -> tuple[str | None, str | None]:
    """(the full ref HEAD is on or None when detached, the sha HEAD names or None), read
    from the files alone (recovery and `plait clean` look at many)."""
    own = path / ".git"
    try:
        text = (own / "HEAD").read_text().strip()
    except OSError:
        return None, None
    if not text.startswith("ref: "):
        return None, text or None
    ref = text.removeprefix("ref: ")
    try:
        return ref, (own / ref).read_text().strip() or None
    except OSError:
        pass
    try:
        packed = (own / "packed-refs").read_text().splitlines()
    except OSError:
        return ref, None
    for line in packed:
        sha, _, name = line.partition(" ")
        if name == ref:
            return ref, sha
    return ref, None


def remove(path: Path) -> None:
    """Delete a task's repository and checkout (its kept work was fetched first)."""
    shutil.rmtree(path, ignore_errors=False, onerror=_writable_then_retry)


def _writable_then_retry(function: object, name: str, _info: object) -> None:
    os.chmod(name, 0o700)
    os.chmod(os.path.dirname(name), 0o700)
    if callable(function):
        function(name)
