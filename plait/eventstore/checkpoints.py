"""SQLite WAL checkpoints on a thread of their own, so that no commit waits for one.

In WAL mode every commit appends pages to the -wal file; a checkpoint copies them back into
the database file and syncs it. By default SQLite runs the checkpoint inside whichever commit
takes the WAL past 1,000 pages, and that commit waits for the copy and two fsyncs: measured in
bench/store.py, that is a third of the time of an append of ten events. SQLite's documentation
suggests the alternative used here: checkpoints from a separate thread, PASSIVE so that they
never block a reader or a writer. Commits go on in parallel on the other core.

The automatic checkpoint stays on, at AUTOCHECKPOINT_PAGES, as the safety net for a process
that writes without a checkpointer or a checkpointer that cannot keep up: the WAL stays
bounded either way.

"A quiet second" means a second with no commit in it: a store that commits steadily (a run's
output at ten events a second) is checkpointed every CHECKPOINT_EVERY_COMMITS commits, not
every second. A checkpoint copies pages and syncs the database file while commits go on, and
on this 2-core machine the commit (and the live event) that ran beside it took 4-10 ms instead
of 0.3 (bench/sse.py: the slow events were every tenth, at ten a second).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable

# ~40 MB of 4 KiB pages: reached only if this thread falls far behind.
AUTOCHECKPOINT_PAGES = 10_000
# About what SQLite's default of 1,000 pages amounts to for plait's appends.
CHECKPOINT_EVERY_COMMITS = 100
IDLE_CHECKPOINT_SECONDS = 1.0


class WalCheckpointer:
    """Checkpoints after every CHECKPOINT_EVERY_COMMITS commits, and after a quiet second."""

    def __init__(
        self,
        connect: Callable[[], sqlite3.Connection],
        every_commits: int = CHECKPOINT_EVERY_COMMITS,
        idle_seconds: float = IDLE_CHECKPOINT_SECONDS,
    ) -> None:
        self._connect = connect
        self._every = every_commits
        self._idle = idle_seconds
        self._pending = 0
        self._last_commit = 0.0  # time.monotonic() of the latest commit
        self._wake = threading.Event()
        self._stopping = False
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._done = threading.Condition()
        self.checkpoints = 0
        # (busy, frames in the WAL, frames checkpointed), as PRAGMA wal_checkpoint reports.
        self.last_result: tuple[int, int, int] | None = None

    def committed(self) -> None:
        """A writer committed: start the thread on first use, wake it when enough piled up."""
        if self._thread is None:
            self._start()
        # Unlocked: an increment lost to a race delays a checkpoint by one commit, no more.
        self._last_commit = time.monotonic()
        self._pending += 1
        if self._pending >= self._every:
            self._wake.set()

    def wait_for_checkpoint(self, after: int, timeout: float) -> bool:
        """Wait until more than `after` checkpoints have run (for tests and diagnostics)."""
        with self._done:
            return self._done.wait_for(lambda: self.checkpoints > after, timeout=timeout)

    def close(self) -> None:
        with self._lock:
            self._stopping = True
            thread = self._thread
        self._wake.set()
        if thread is not None:
            thread.join()

    def _start(self) -> None:
        with self._lock:
            if self._thread is not None or self._stopping:
                return
            self._thread = threading.Thread(
                target=self._run, name="plait-wal-checkpointer", daemon=True
            )
            self._thread.start()

    def _run(self) -> None:
        connection = self._connect()
        try:
            while not self._stopping:
                self._wake.wait(self._idle)
                self._wake.clear()
                if self._pending == 0 or self._stopping:
                    continue
                since = time.monotonic() - self._last_commit
                if not checkpoint_due(self._pending, since, self._every, self._idle):
                    continue  # commits still coming: wait for the count or for quiet
                self._pending = 0
                self._checkpoint(connection)
        finally:
            connection.close()

    def _checkpoint(self, connection: sqlite3.Connection) -> None:
        try:
            row = connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except sqlite3.Error:
            return  # another checkpoint holds the lock, or the file is gone: try next round
        with self._done:
            self.last_result = (int(row[0]), int(row[1]), int(row[2]))
            self.checkpoints += 1
            self._done.notify_all()


def checkpoint_due(pending: int, since_commit: float, every: int, idle: float) -> bool:
    """After `every` commits, or once commits have stopped for `idle` seconds."""
    return pending >= every or (pending > 0 and since_commit >= idle)
