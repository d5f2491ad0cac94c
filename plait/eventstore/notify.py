"""In-process hand-off: a writer on any thread gives what it committed to every live feed.

`notify(position, events)` runs each registered callback on its own event loop with the
position of the last event committed and, when the writer has them, the stored events
themselves (as a read would return them), so a feed can pass them on without reading them
back. A writer that calls it while it still holds its write lock hands the events over in
commit order.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence

from plait.eventstore.records import StoredEvent

Committed = Callable[[int, Sequence[StoredEvent]], None]


class Notifier:
    """Thread-safe fan-out of "these were appended" to callbacks on event loops."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._callbacks: dict[Committed, asyncio.AbstractEventLoop] = {}
        self.closed = False

    def register(self, committed: Committed) -> None:
        """Call `committed` on every notify(); call this from the loop it is to run on."""
        with self._lock:
            self._callbacks[committed] = asyncio.get_running_loop()

    def unregister(self, committed: Committed) -> None:
        with self._lock:
            self._callbacks.pop(committed, None)

    def notify(self, position: int = 0, events: Sequence[StoredEvent] = ()) -> None:
        with self._lock:
            callbacks = list(self._callbacks.items())
        for committed, loop in callbacks:
            try:
                loop.call_soon_threadsafe(committed, position, events)
            except RuntimeError:  # that loop is closed: forget it
                self.unregister(committed)

    def close(self) -> None:
        self.closed = True
        self.notify()
