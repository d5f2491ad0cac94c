"""How the event loop learns that a child process ended: a pidfd per child, not a thread.

Python 3.11's asyncio waits for each child (git, a task's command) with a thread of its own
blocked in waitpid (ThreadedChildWatcher): a thread started and joined per git process, a
few hundred for a 30-task run. On Linux (5.3+) a process file descriptor says the same in
the loop itself: `PidfdChildWatcher` adds the child's pidfd to the loop's selector and
reaps it when it becomes readable; no thread, no signal handler.

`pidfd_children()` installs it for the running loop while its body runs (the CLI's
`asyncio.run` through `run`, `plait serve`'s uvicorn loop in http/serve.py), and puts the
previous watcher back after; never at import time. It leaves things as they are when the
loop is not asyncio's selector loop (uvloop reaps its children itself), where there is no
pidfd (not Linux, an old kernel, a seccomp filter refusing pidfd_open), off the main thread
(asyncio's watchers are the main thread's), and from Python 3.12 on (asyncio uses pidfds
itself where it can, and its watcher API is deprecated).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import threading
import warnings
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar, TypeVarTuple, Unpack

__all__ = ["pidfd_available", "pidfd_children", "run"]

T = TypeVar("T")
Ts = TypeVarTuple("Ts")


def run(main: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run(main)`, its child processes watched through pidfds where possible."""
    return asyncio.run(_watched(main))


async def _watched(main: Coroutine[Any, Any, T]) -> T:
    with pidfd_children():
        return await main


def pidfd_available() -> bool:
    """This kernel hands out process file descriptors (os.pidfd_open works)."""
    opener = getattr(os, "pidfd_open", None)
    if opener is None:
        return False
    try:
        os.close(opener(os.getpid()))
    except OSError:
        return False
    return True


@contextlib.contextmanager
def pidfd_children() -> Iterator[bool]:
    """While the body runs, the running loop's children are waited for with pidfds (yields
    whether they are); the previous watcher is back afterwards."""
    loop = asyncio.get_running_loop()
    policy = asyncio.get_event_loop_policy()
    if (
        sys.version_info >= (3, 12)
        or not isinstance(loop, asyncio.SelectorEventLoop)
        or threading.current_thread() is not threading.main_thread()
        or not pidfd_available()
    ):
        yield False
        return
    previous = policy.get_child_watcher()
    if not isinstance(previous, asyncio.ThreadedChildWatcher):
        yield isinstance(previous, _LoopPidfdWatcher)  # installed already, or the user's own
        return
    watcher = _LoopPidfdWatcher(loop, previous)
    policy.set_child_watcher(watcher)  # closing a ThreadedChildWatcher stops nothing
    try:
        yield True
    finally:
        # A child still watched now was killed with its loop's tasks; closing the watcher
        # stops waiting for it (asyncio warns about that, needlessly here).
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            policy.set_child_watcher(previous)


class _LoopPidfdWatcher(asyncio.PidfdChildWatcher):
    """Pidfds for the children of its loop; another thread's loop (a test's server thread)
    keeps the thread-per-child watcher it had, which works from any loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, others: asyncio.AbstractChildWatcher):
        super().__init__()
        self.attach_loop(loop)
        self._own_loop = loop
        self._others = others

    def _mine(self) -> bool:
        try:
            return asyncio.get_running_loop() is self._own_loop
        except RuntimeError:
            return False

    def is_active(self) -> bool:
        return super().is_active() if self._mine() else self._others.is_active()

    def add_child_handler(
        self, pid: int, callback: Callable[[int, int, Unpack[Ts]], object], *args: *Ts
    ) -> None:
        if self._mine():
            super().add_child_handler(pid, callback, *args)
        else:
            self._others.add_child_handler(pid, callback, *args)

    def remove_child_handler(self, pid: int) -> bool:
        return super().remove_child_handler(pid) or self._others.remove_child_handler(pid)
