"""Make a worktree hold exactly its commit's tree: every untracked and ignored file goes,
except the setup outputs the plan keeps (`keep_ignored`), and those lose their caches.

Why caches go even from kept outputs: a `.pyc` is trusted while its source's size and mtime
(in whole seconds) match, so a same-size edit checked out within the same second as the
last import is judged by the old bytecode. `.pytest_cache` makes pytest reorder and skip
by what an earlier commit did (`--lf`, `--sw`).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from plait.domain.plan.paths import CACHE_DIRS, CACHE_SUFFIXES, path_parts

_GLOB_SPECIALS = "\\*?["


def anchored_pattern(path: str) -> str:
    """A gitignore-style pattern that matches exactly `path` from the worktree root (glob
    characters escaped)."""
    literal = "/".join(path_parts(path))
    for special in _GLOB_SPECIALS:
        literal = literal.replace(special, "\\" + special)
    return "/" + literal


def clean_argv(keep: Sequence[str]) -> list[str]:
    """`git clean` arguments that delete every untracked and ignored file (nested
    repositories too) except the `keep` paths."""
    argv = ["clean", "-ffdxq"]
    for path in keep:
        argv += ["-e", anchored_pattern(path)]
    return argv


def remove_caches(root: Path, keep: Sequence[str]) -> list[Path]:
    """Delete bytecode and pytest caches below each kept path; return what was deleted.

    Symbolic links are never followed (a venv's `lib64` points at its `lib`).
    """
    removed: list[Path] = []
    for path in keep:
        top = root.joinpath(*path_parts(path))
        if top.is_symlink() or not top.is_dir():
            continue
        for directory, dirs, files in os.walk(top):
            for name in [d for d in dirs if d in CACHE_DIRS]:
                dirs.remove(name)
                removed.append(_remove(Path(directory, name)))
            for name in files:
                if name.endswith(CACHE_SUFFIXES):
                    removed.append(_remove(Path(directory, name)))
    return removed


def _remove(path: Path) -> Path:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()
    return path
