"""Processes a dead plait left behind.

Tasks run in process groups of their own, so when the process that drove a run is killed
they keep running. Recovery finds them by their working directory: any process whose cwd is
inside the run's worktree directory belongs to that run (a task, or something it spawned).
Linux only (/proc); elsewhere nothing is found.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path


def processes_inside(directory: Path) -> list[int]:
    """Pids whose working directory is `directory` or below it."""
    root = directory.resolve()
    found = []
    try:
        entries = os.listdir("/proc")
    except OSError:
        return []
    for entry in entries:
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            cwd = Path(os.readlink(f"/proc/{entry}/cwd"))
        except OSError:
            continue  # gone, or not ours to look at
        if cwd == root or cwd.is_relative_to(root):
            found.append(int(entry))
    return found


def kill_process_groups(pids: list[int]) -> int:
    """SIGKILL each pid's process group (and the pid itself). Returns how many were signalled."""
    signalled = 0
    for pid in pids:
        try:
            group = os.getpgid(pid)
        except ProcessLookupError:
            continue
        try:
            if group != os.getpgid(0):
                os.killpg(group, signal.SIGKILL)
            else:
                os.kill(pid, signal.SIGKILL)
            signalled += 1
        except (ProcessLookupError, PermissionError):
            continue
    return signalled
