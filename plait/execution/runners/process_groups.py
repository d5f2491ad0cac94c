"""Signal and observe a whole process group (a task and every descendant that stayed in it)."""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path

_PROC = Path("/proc")


def signal_group(pgid: int, sig: signal.Signals) -> None:
    """Send `sig` to every process in the group; a group that is already gone is fine."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _live_member(stat_path: Path, pgid: int) -> bool:
    try:
        stat = stat_path.read_text()
    except OSError:
        return False
    # The command name may contain spaces and ')': fields start after the last ')'.
    state, _ppid, pgrp, *_ = stat[stat.rindex(")") + 2 :].split()
    return int(pgrp) == pgid and state not in ("Z", "X")


def group_alive(pgid: int) -> bool:
    """Whether any process of the group is still running.

    On Linux /proc is read so that zombies do not count: in a container whose
    pid 1 never reaps, a killed grandchild stays a zombie forever and kill(0)
    would keep reporting the group alive.
    """
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False  # no member at all, not even a zombie: no need to scan /proc
    except PermissionError:
        pass
    if not _PROC.is_dir():
        return True
    return any(
        _live_member(entry / "stat", pgid) for entry in _PROC.iterdir() if entry.name.isdigit()
    )
