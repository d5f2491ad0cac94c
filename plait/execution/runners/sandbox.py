"""The opt-in sandbox (`sandbox: bwrap`): a task's processes under bubblewrap.

Inside, the whole filesystem is read-only (`--ro-bind / /`) but for what the task owns:
its directory (its checkout and its own repository, see worktrees/isolated.py), its agent's
scratch directory, and a private /tmp (a fresh tmpfs, TMPDIR points there). /dev and /proc
are the sandbox's own, the processes get a PID namespace of their own (they all die with
it), and with `sandbox_network: false` a network namespace with nothing but loopback.

What it does not protect: anything the task can read (the user's files, keys in $HOME),
what it sends over the network when the network is on, the test command (it runs outside,
in the integration worktree), and the kernel (bubblewrap is namespaces, not a VM).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

__all__ = ["BWRAP", "SandboxMissing", "check_bwrap", "sandboxed"]

BWRAP = "/usr/bin/bwrap"  # Debian's bubblewrap (never one found on PATH: codex ships its own)


class SandboxMissing(Exception):
    """The plan asks for a sandbox this machine does not have."""


def check_bwrap(program: str = BWRAP) -> None:
    if not os.access(program, os.X_OK):
        raise SandboxMissing(
            f"the plan asks for 'sandbox: bwrap', but {program} is not installed:"
            " install bubblewrap (Debian/Ubuntu: apt-get install bubblewrap), or remove"
            " 'sandbox' from the plan"
        )


def sandboxed(
    argv: Sequence[str],
    *,
    cwd: Path,
    writable: Sequence[Path],
    readable: Sequence[Path],
    network: bool,
    program: str = BWRAP,
) -> list[str]:
    """`argv` as bubblewrap runs it: only `cwd` and `writable` (and a private /tmp)
    writable, `cwd` the working directory, no network unless `network`. `readable`: what
    must stay visible, read-only, even below /tmp (the user's repository and its objects)."""
    wrapped = [program, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]
    wrapped += ["--tmpfs", "/tmp", "--setenv", "TMPDIR", "/tmp"]
    # Bound after the tmpfs, so what lives below /tmp is still the real one.
    for path in readable:
        if path.is_relative_to("/tmp"):
            wrapped += ["--ro-bind", str(path), str(path)]
    for path in (cwd, *writable):
        wrapped += ["--bind", str(path), str(path)]
    wrapped += ["--unshare-pid", "--die-with-parent"]
    if not network:
        wrapped.append("--unshare-net")
    return [*wrapped, "--chdir", str(cwd), "--", *argv]
