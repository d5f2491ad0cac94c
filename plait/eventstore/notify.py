"""In-process wake-ups: a writer on any thread wakes every waiting event loop."""

from __future__ import annotations

import asyncio
import threading


class Notifier:
    """Thread-safe fan-out of "something was appended" to asyncio waiters."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()
        self.closed = False

    def register(self) -> asyncio.Event:
        """An event set on every notify(); call from inside the event loop that waits on it."""
        wake = asyncio.Event()
        with self._lock:
            self._waiters.add((asyncio.get_running_loop(), wake))
        return wake

    def unregister(self, wake: asyncio.Event) -> None:
        with self._lock:
            self._waiters = {w for w in self._waiters if w[1] is not wake}

    def notify(self, _position: int = 0) -> None:
        with self._lock:
            waiters = list(self._waiters)
        for loop, wake in waiters:
            try:
                loop.call_soon_threadsafe(wake.set)
            except RuntimeError:  # that loop is closed: forget it
                self.unregister(wake)

    def close(self) -> None:
        self.closed = True
        self.notify()
