"""Which files of the user's checkout a test run opens: proof that the tests judged the
integration worktree's files, and not the user's through an editable install, a PYTHONPATH
or a path in the command.

Linux inotify, through libc: any language, no privileges, no tool to install. The watch
covers every directory of the checkout that holds a tracked file, and the `__pycache__`
beside it (an import whose bytecode is up to date opens only the `.pyc`, never the source).
An open counts when it is of a tracked file, or of anything in such a `__pycache__`.

inotify cannot say which process opened a file: the watch is on only while the test
command runs, when plait itself touches nothing in the checkout, but another program
reading the same files at that moment (an editor indexing them) counts too.

Tools that look for their configuration in every parent directory (pytest, ruff,
editorconfig) reach the checkout's root when the worktree lives below it (the default:
`.git/plait-worktrees`). So in the directories above the worktree only files with a code
suffix count, not a `pyproject.toml` read on the way up.
"""

from __future__ import annotations

import ctypes
import errno
import itertools
import logging
import os
import re
import shlex
import shutil
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

IN_OPEN = 0x00000020
IN_Q_OVERFLOW = 0x00004000
IN_ISDIR = 0x40000000
IN_ONLYDIR = 0x01000000
_EVENT = struct.Struct("iIII")  # wd, mask, cookie, len; then len bytes of NUL-padded name
# Code that an import or a require opens; in the directories above the worktree only these
# count (see the module docstring).
CODE_SUFFIXES = (".py", ".pyc", ".so", ".pyd", ".js", ".mjs", ".cjs", ".ts", ".mts", ".cts")
MAX_REPORTED = 200
_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")


@dataclass
class _Directory:
    relative: str  # to the checkout root, "" for the root itself
    tracked: frozenset[str]  # names of tracked files in it; empty for a __pycache__
    cache: bool
    above_worktree: bool


@dataclass
class CheckoutWatch:
    checkout: Path
    _fd: int
    _dirs: dict[int, _Directory]
    uncovered: int = 0  # directories no watch could be added for (the kernel's limit)
    opened: set[str] = field(default_factory=set)
    overflowed: bool = False

    @classmethod
    def start(
        cls, checkout: Path, tracked_files: Sequence[str], worktree: Path
    ) -> CheckoutWatch | None:
        """Watch the checkout's tracked directories; None where inotify is not available.

        `tracked_files` are paths relative to the checkout (`git ls-files`); directories
        inside `worktree` (a worktree root below the checkout) are left out.
        """
        libc = _libc()
        if libc is None:
            return None
        fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if fd < 0:
            log.warning("inotify is unavailable: %s", os.strerror(ctypes.get_errno()))
            return None
        checkout, worktree = checkout.resolve(), worktree.resolve()
        names: dict[str, set[str]] = {"": set()}
        for path in tracked_files:
            directory, _, name = path.rpartition("/")
            names.setdefault(directory, set()).add(name)
        watch = cls(checkout, fd, {})
        for relative, tracked in sorted(names.items()):
            absolute = checkout / relative if relative else checkout
            if absolute.is_relative_to(worktree):
                continue
            above = worktree.is_relative_to(absolute)
            watch._add(libc, absolute, _Directory(relative, frozenset(tracked), False, above))
            cache = absolute / "__pycache__"
            if cache.is_dir() and not cache.is_symlink():
                cache_relative = f"{relative}/__pycache__" if relative else "__pycache__"
                watch._add(libc, cache, _Directory(cache_relative, frozenset(), True, False))
        return watch

    def _add(self, libc: ctypes.CDLL, path: Path, directory: _Directory) -> None:
        wd = libc.inotify_add_watch(self._fd, os.fsencode(path), IN_OPEN | IN_ONLYDIR)
        if wd >= 0:
            self._dirs[wd] = directory
            return
        error = ctypes.get_errno()
        if error != errno.ENOENT:  # a directory deleted meanwhile is simply not there
            self.uncovered += 1

    def stop(self) -> list[str]:
        """Read what was opened, close the watch; the opened paths, sorted."""
        try:
            self._drain()
        finally:
            os.close(self._fd)
        return sorted(self.opened)

    def _drain(self) -> None:
        while True:
            try:
                data = os.read(self._fd, 1 << 16)
            except BlockingIOError:
                return
            if not data:
                return
            offset = 0
            while offset < len(data):
                wd, mask, _cookie, length = _EVENT.unpack_from(data, offset)
                raw = data[offset + _EVENT.size : offset + _EVENT.size + length]
                offset += _EVENT.size + length
                if mask & IN_Q_OVERFLOW:
                    self.overflowed = True
                    continue
                directory = self._dirs.get(wd)
                if directory is None or mask & IN_ISDIR or len(self.opened) >= MAX_REPORTED:
                    continue
                name = os.fsdecode(raw.rstrip(b"\0"))
                if _counts(directory, name):
                    relative = f"{directory.relative}/{name}" if directory.relative else name
                    self.opened.add(str(self.checkout / relative))


def _counts(directory: _Directory, name: str) -> bool:
    if directory.cache:
        return True
    if name not in directory.tracked:
        return False
    return not directory.above_worktree or name.endswith(CODE_SUFFIXES)


def _libc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.inotify_init1  # noqa: B018  (raises AttributeError where there is none)
    except (OSError, AttributeError):
        return None
    return libc


FIX = (
    "Give the tests an environment of their own inside the worktree, e.g. "
    "test_setup_command: python -m venv .venv && .venv/bin/pip install -e . "
    "with keep_ignored: [.venv], setup_inputs: [pyproject.toml] and "
    "test_command: .venv/bin/python -m pytest (see docs/plan-format.md, "
    '"An environment of its own").'
)


def outside_read_problem(
    opened: Sequence[str], checkout: Path, env: dict[str, str], test_command: str
) -> str:
    """The refusal for a test run that opened files of the user's checkout: what it read,
    the likely cause, and the fix."""
    shown = ", ".join(opened[:3]) + (f" (and {len(opened) - 3} more)" if len(opened) > 3 else "")
    return (
        f"the test command read files of your checkout {checkout} instead of the merged "
        f"commit's: {shown}. Its verdicts would judge your checkout, so plait refuses to run. "
        f"{_likely_cause(checkout, env, test_command)} {FIX}"
    )


def _likely_cause(checkout: Path, env: dict[str, str], test_command: str) -> str:
    for variable in ("PYTHONPATH", "NODE_PATH"):
        inside = [
            entry
            for entry in env.get(variable, "").split(os.pathsep)
            if entry and _inside(Path(entry), checkout)
        ]
        if inside:
            return f"{variable} names {inside[0]}, in your checkout: unset it for plait."
    program = _program(test_command, env)
    if program is not None and (_inside(program, checkout) or _in_a_venv(program)):
        return (
            f"The test command runs {program}, from an environment outside the worktree that "
            "imports your checkout (an editable install, `pip install -e .`)."
        )
    return (
        "Something in the test command's environment points at your checkout: an editable "
        "install (`pip install -e .`) in the Python it runs, a path in the command, or a "
        "variable such as PYTHONPATH."
    )


def _program(command: str, env: dict[str, str]) -> Path | None:
    """The program a simple shell command line starts (after any `NAME=value` words)."""
    try:
        words = shlex.split(command)
    except ValueError:
        return None
    words = list(itertools.dropwhile(_ASSIGNMENT.match, words))
    if not words:
        return None
    found = shutil.which(words[0], path=env.get("PATH")) if "/" not in words[0] else words[0]
    return Path(found) if found and os.path.isabs(found) else None


def _inside(path: Path, directory: Path) -> bool:
    try:
        return path.resolve().is_relative_to(directory.resolve())
    except OSError:
        return False


def _in_a_venv(program: Path) -> bool:
    return (program.parent.parent / "pyvenv.cfg").is_file()
