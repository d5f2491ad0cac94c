"""Copy selected files from the user's checkout into a worktree, never outside either tree."""

from __future__ import annotations

import os
import shutil
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath


@dataclass(frozen=True)
class CopyReport:
    copied: tuple[str, ...]
    missing: tuple[str, ...]  # not present in the user's checkout
    not_ignored: tuple[str, ...]  # tracked or not ignored: the worktree's commit decides those


def checked_relative(path: str) -> PurePosixPath:
    """`path` as a relative path that cannot climb out of its tree; ValueError otherwise."""
    pure = PurePosixPath(path)
    if not path or "\0" in path or pure.is_absolute():
        raise ValueError(f"{path!r}: give a path relative to the repository root")
    if ".." in pure.parts or ".git" in pure.parts:
        raise ValueError(f"{path!r}: may not contain '..' or '.git'")
    return pure


def _safe_destination(worktree: Path, relative: PurePosixPath) -> Path:
    # A tracked symlink in the worktree must not redirect our write elsewhere.
    target = worktree / relative
    parent = target.parent.resolve()
    if not parent.is_relative_to(worktree.resolve()) or target.is_symlink():
        raise ValueError(f"{relative}: destination leaves the worktree through a symlink")
    return target


def _copy(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    if source.is_dir():
        shutil.copytree(source, target, symlinks=True, dirs_exist_ok=True)
    else:
        shutil.copy2(source, target)


def copy_paths(
    repo_root: Path, worktree: Path, paths: Sequence[str], ignored: Collection[str]
) -> CopyReport:
    """Copy each of `paths` that git reports as ignored; all paths are validated first."""
    relatives = [checked_relative(p) for p in paths]
    ignored_paths = {PurePosixPath(p) for p in ignored}
    copied: list[str] = []
    missing: list[str] = []
    not_ignored: list[str] = []
    for raw, relative in zip(paths, relatives, strict=True):
        source = repo_root / relative
        if not os.path.lexists(source):
            missing.append(raw)
        elif relative not in ignored_paths:
            not_ignored.append(raw)
        else:
            _copy(source, _safe_destination(worktree, relative))
            copied.append(raw)
    return CopyReport(tuple(copied), tuple(missing), tuple(not_ignored))
