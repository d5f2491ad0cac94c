"""One writer thread per store: the appends an event loop asks for, one after another, in order.

An append is a blocking database call, so a coroutine hands it to a thread. Through
asyncio.to_thread each append went to the loop's shared pool, behind whatever reads and
projection pages were queued there, on whichever of its threads was free, and two appends
asked for in one order could commit in the other. The store's writer is one thread with a
queue of its own: it makes the appends in the order they were asked for, from any number of
event loops, and hands each caller its append's result or its error on the caller's loop.
Nothing but appends waits in that queue. Both backends make one append at a time anyway
(SQLite's write lock; PostgreSQL's append function locks the events table until it commits),
so one thread per store costs no parallelism.

close() lets the appends already asked for finish, then ends the thread; an append asked for
after that runs on the caller loop's default executor as before (where a closed store refuses
it with its usual error).
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

# A call to make and where its outcome goes; None tells the thread to end.
_Job = tuple[Callable[[], Any], asyncio.AbstractEventLoop, "asyncio.Future[Any]"]


class SerialWriter:
    """Runs blocking calls on one thread of its own, first asked, first run."""

    def __init__(self, name: str = "plait-store-writer") -> None:
        self._name = name
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = False

    async def run(self, call: Callable[[], T]) -> T:
        """`call()`'s result (or its exception), once every call asked for before it ran."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        with self._lock:
            closed = self._closed
            if not closed:
                if self._thread is None:
                    self._thread = threading.Thread(
                        target=self._serve, name=self._name, daemon=True
                    )
                    self._thread.start()
                self._jobs.put((call, loop, future))
        if closed:
            return await asyncio.to_thread(call)
        return await future

    def close(self) -> None:
        """Finish the calls asked for so far, then end the thread (idempotent)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            thread = self._thread
            self._jobs.put(None)
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    def _serve(self) -> None:
        while (job := self._jobs.get()) is not None:
            call, loop, future = job
            try:
                outcome: tuple[bool, Any] = (True, call())
            except BaseException as exc:  # the caller gets it, as from asyncio.to_thread
                outcome = (False, exc)
            with contextlib.suppress(RuntimeError):  # the caller's loop is closed: nobody waits
                loop.call_soon_threadsafe(_settle, future, outcome)
            del job, call, future, outcome  # no reference to a result outlives its hand-off


def _settle(future: asyncio.Future[Any], outcome: tuple[bool, Any]) -> None:
    if future.done():  # the caller was cancelled: the call ran, its outcome has no taker
        return
    ok, value = outcome
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)
