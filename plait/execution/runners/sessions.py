"""A task's session: every process a task started, wherever it went, and a reaper that kills
them all when the plait process that started them dies, however it dies.

A process group is not enough to find a task's processes: `setsid` (a daemon) leaves it, and
such a process can hold the task's stdout open for ever. So every task process is marked:
its environment carries SESSION_VARIABLE = "<instance>.<n>", where <instance> names this
plait process and <n> the task's process. Descendants inherit the environment, whatever
session or group they move to, and /proc/<pid>/environ shows it, so `members()` finds them.

Two mechanisms make the processes die with their driver:
- PR_SET_PDEATHSIG(SIGKILL) on the process plait starts (`die_with_parent`, run between fork
  and exec). The kernel sends the signal when the THREAD that spawned the child exits, not
  the process, so children are spawned from the event loop's thread (asyncio's subprocess
  functions do), which lives as long as the driver.
- The reaper: one small process per plait process (`ensure_reaper`), started once, that
  reads a pipe whose only writer is the plait process. When plait dies (SIGKILL included)
  the kernel closes that pipe; the reaper wakes on end-of-file, SIGKILLs every process
  marked with this instance, and exits. It leads a session of its own, so a Ctrl-C at the
  terminal does not reach it.
A process that clears its own environment (`env -i`) escapes the marking; the run's next
owner still kills what runs inside the run's worktrees (orphans.py).

This module is stdlib only: the reaper runs it as a script (`python -I sessions.py ID`).
"""

from __future__ import annotations

import contextlib
import ctypes
import itertools
import os
import signal
import sys
import uuid

SESSION_VARIABLE = "PLAIT_TASK_SESSION"
_PR_SET_PDEATHSIG = 1
_ROUNDS = 20  # a forking process may add members while a sweep kills: sweep until none

_instance = ""
_counter = itertools.count(1)
_reaper_pid = 0
_reaper_fd = -1  # the write end of the reaper's pipe
_owner_pid = 0  # the process that started the reaper (a forked child must start its own)
_libc: ctypes.CDLL | None = None


def instance() -> str:
    """This plait process's mark: every task session it starts begins with it."""
    global _instance
    if not _instance:
        _instance = uuid.uuid4().hex[:16]
    return _instance


def new_session() -> str:
    """A mark for one task process and everything it starts."""
    return f"{instance()}.{next(_counter)}"


def members(session: str, *, prefix: bool = False) -> list[int]:
    """Live pids whose environment carries `session` (with `prefix`: any session that starts
    with `session.`). Processes plait may not read are not found."""
    wanted = f"{SESSION_VARIABLE}={session}".encode()
    found = []
    me = os.getpid()
    try:
        entries = os.listdir("/proc")
    except OSError:
        return []
    for entry in entries:
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as environ:
                variables = environ.read().split(b"\0")
        except OSError:
            continue  # gone, a kernel thread, or not ours to read
        if any(_matches(v, wanted, prefix) for v in variables) and _alive(int(entry)):
            found.append(int(entry))
    return found


def _matches(variable: bytes, wanted: bytes, prefix: bool) -> bool:
    if prefix:
        return variable.startswith(wanted + b".")
    return variable == wanted


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return False


def signal_session(session: str, sig: signal.Signals, *, prefix: bool = False) -> int:
    """Send `sig` to every member of `session`. Returns how many were signalled."""
    signalled = 0
    for pid in members(session, prefix=prefix):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)
            signalled += 1
    return signalled


def kill_session(session: str, *, prefix: bool = False) -> int:
    """SIGKILL every member of `session` until a sweep finds none (bounded)."""
    killed = 0
    for _ in range(_ROUNDS):
        signalled = signal_session(session, signal.SIGKILL, prefix=prefix)
        if not signalled:
            break
        killed += signalled
    return killed


def die_with_parent() -> None:
    """preexec_fn: the child gets SIGKILL when the thread that spawned it exits. Runs between
    fork and exec, so it only calls a function resolved before the fork."""
    if _libc is not None:
        _libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)


def prepare_spawn() -> None:
    """Call before spawning task processes: resolves prctl (Linux) for `die_with_parent` and
    starts this process's reaper if it is not running."""
    global _libc
    if _libc is None and sys.platform.startswith("linux"):
        with contextlib.suppress(OSError):
            _libc = ctypes.CDLL(None, use_errno=True)
    ensure_reaper()


def ensure_reaper() -> int | None:
    """Start the reaper for this process, once (again if it died). Returns its pid (None
    where there is no /proc). The pipe's write end is held by this process alone: it is
    not inheritable, so no child keeps the reaper waiting."""
    global _reaper_pid, _reaper_fd, _owner_pid
    if not os.path.isdir("/proc"):
        return None
    if _reaper_pid and _owner_pid == os.getpid():
        try:
            if os.waitpid(_reaper_pid, os.WNOHANG) == (0, 0):
                return _reaper_pid
        except ChildProcessError:
            pass
        os.close(_reaper_fd)
    read_end, write_end = os.pipe()
    try:
        _reaper_pid = os.posix_spawn(
            sys.executable,
            [sys.executable, "-I", os.path.abspath(__file__), instance()],
            dict(os.environ),
            file_actions=[
                (os.POSIX_SPAWN_DUP2, read_end, 0),
                (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
                (os.POSIX_SPAWN_OPEN, 2, os.devnull, os.O_WRONLY, 0),
            ],
            setsid=True,
        )
    except BaseException:
        os.close(write_end)
        raise
    finally:
        os.close(read_end)
    _reaper_fd, _owner_pid = write_end, os.getpid()
    return _reaper_pid


def _reap(instance_id: str) -> None:
    """The reaper's life: wait for the end of stdin, then kill the instance's sessions."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # only the pipe's end makes it act
    with contextlib.suppress(OSError):
        while sys.stdin.buffer.read(4096):
            pass
    kill_session(instance_id, prefix=True)


if __name__ == "__main__":  # the reaper
    _reap(sys.argv[1])
