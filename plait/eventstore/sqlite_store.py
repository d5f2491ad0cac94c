"""The SQLite event store: appends on one writer connection inside BEGIN IMMEDIATE.

SQLite lets one writer in at a time anyway, so this process keeps one connection for appends
(no pool checkout and reset per append), and the transaction already serialises writers
across processes: the state an append reads (the stream's version, the last event's
position and hash, the run's lease) cannot change before it commits. The project-runs rule
is kept by a trigger (ddl_0006) in the same transaction. WAL checkpoints run on a thread of
their own (checkpoints.py), not inside commits.

What an append commits is also the state the next append starts from, so the writer keeps
it (_Tip) and skips the query for it, as long as `PRAGMA data_version` inside the next
append's BEGIN IMMEDIATE shows that no other connection (another process, a projection's
write connection, a lease) committed in between. The lease fence is always read in the
transaction; the unique constraints still refuse whatever a wrong state would insert.
"""

from __future__ import annotations

import itertools
import sqlite3
import threading
from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy.engine import URL

from plait.eventstore import hashing
from plait.eventstore.base import SqlEventStore
from plait.eventstore.checkpoints import WalCheckpointer
from plait.eventstore.ddl_0006 import SQLITE_NOW, SQLITE_RUN_ACTIVE, SQLITE_RUN_NOT_ACTIVE
from plait.eventstore.errors import ConcurrencyError, FencedOff, ProjectRunConflict
from plait.eventstore.records import Fence, StoredEvent, idempotent_positions
from plait.eventstore.statements import COLUMNS

_new_tuple = tuple.__new__

# Everything an append must know, in one statement: the stream's version, the last event.
_APPEND_STATE = (
    "SELECT (SELECT COALESCE(MAX(stream_version), 0) FROM plait_events WHERE stream_id = ?), "
    "last.position, last.hash FROM (SELECT 1) "
    "LEFT JOIN (SELECT position, hash FROM plait_events ORDER BY position DESC LIMIT 1) AS last"
)
_INSERT = f"INSERT INTO plait_events ({COLUMNS}) VALUES ({', '.join(['?'] * 10)})"
_STREAM_VERSION = "SELECT COALESCE(MAX(stream_version), 0) FROM plait_events WHERE stream_id = ?"
# Changes whenever another connection commits to the database; never for this one's commits.
_DATA_VERSION = "PRAGMA data_version"
# The streams whose versions the tip remembers; past this many it starts afresh.
MAX_TIP_STREAMS = 10_000
_FENCE = f"SELECT epoch, expires_at > {SQLITE_NOW} FROM plait_run_leases WHERE run_id = ?"


class SqliteEventStore(SqlEventStore):
    MARK: ClassVar[str] = "?"
    UNAVAILABLE: ClassVar[tuple[type[Exception], ...]] = (sqlite3.OperationalError,)
    DRIVER_ERRORS: ClassVar[tuple[type[Exception], ...]] = (sqlite3.Error,)
    HANDS_OVER: ClassVar[bool] = True

    def __init__(
        self, url: str | URL, *, upgrade: bool = True, sqlite_synchronous: str | None = None
    ) -> None:
        self._writer_lock = threading.Lock()
        self._writer_connection: sqlite3.Connection | None = None
        self._tip: _Tip | None = None
        super().__init__(url, upgrade=upgrade, sqlite_synchronous=sqlite_synchronous)
        if self.url.database not in (None, "", ":memory:"):
            self.checkpointer = WalCheckpointer(self._detached_connection)

    def _append(
        self,
        stream_id: str,
        rows: list[hashing.EncodedEvent],
        expected_version: int | None,
        recorded_at: datetime,
        fence: Fence | None,
    ) -> list[int]:
        with self._writer_lock:
            connection = self._writer()
            connection.execute("BEGIN IMMEDIATE")
            try:
                if fence is not None:
                    _check_fence(connection, fence)
                tip = self._state(connection, stream_id)
                stored = self._insert(
                    connection, tip, stream_id, rows, expected_version, recorded_at
                )
                connection.execute("COMMIT")
                tip.committed(stream_id, stored[-1])
                self._tip = tip
                # Still holding the write lock: the live feeds get them in commit order.
                self.notifier.notify(stored[-1].position, stored)
                positions = [event.position for event in stored]
            except _AlreadyStored as retry:
                connection.execute("ROLLBACK")
                return retry.positions
            except BaseException:
                self._tip = None  # what was committed, if anything, is read afresh
                self._roll_back_writer(connection)
                raise
        self._committed()
        return positions

    def append_lock(self) -> threading.Lock:
        """Held by every append and every write connection of this process: an append waits
        for a projection's or a lease's write on this lock and goes on the moment it
        commits, not after SQLite's busy handler has slept (1, 2, 5 ms ...), which was the
        tail of every live event stream while a projection wrote."""
        return self._writer_lock

    def _state(self, connection: sqlite3.Connection, stream_id: str) -> _Tip:
        """The chain's head and the stream's version, inside the append's transaction: kept
        from this writer's last commit while no other connection has committed since."""
        data_version = connection.execute(_DATA_VERSION).fetchone()[0]
        tip = self._tip
        if tip is None or tip.data_version != data_version:
            self._tip = None
            current, position, previous = connection.execute(_APPEND_STATE, (stream_id,)).fetchone()
            tip = _Tip(data_version, position or 0, previous or hashing.GENESIS_HASH)
            tip.versions[stream_id] = current
        elif stream_id not in tip.versions:
            if len(tip.versions) >= MAX_TIP_STREAMS:
                tip.versions.clear()
            (current,) = connection.execute(_STREAM_VERSION, (stream_id,)).fetchone()
            tip.versions[stream_id] = current
        return tip

    def _insert(
        self,
        connection: sqlite3.Connection,
        tip: _Tip,
        stream_id: str,
        rows: list[hashing.EncodedEvent],
        expected_version: int | None,
        recorded_at: datetime,
    ) -> list[StoredEvent]:
        current, position, previous = tip.versions[stream_id], tip.position, tip.hash
        # A retried append shows up as a version mismatch or a duplicate event id; only then
        # are the ids looked up, so the usual append pays for no extra query.
        if expected_version is not None and expected_version != current:
            self._raise_unless_retry(connection, stream_id, rows)
            raise ConcurrencyError(stream_id, expected_version, current)
        # recorded_at is kept in the hashed spelling: StoredEvent.recorded_text reads it back
        # as is (older rows carry "+00:00", which StoredEvent.recorded_at parses too).
        stamp = hashing.timestamp_text(recorded_at)
        first = current + 1
        hashes = hashing.chain_hashes(stream_id, first, rows, stamp, previous)
        start = position + 1
        params = [
            (start + i, stream_id, first + i, *row, stamp, hash_)
            for i, (row, hash_) in enumerate(zip(rows, hashes, strict=True))
        ]
        try:
            connection.executemany(_INSERT, params)
        except sqlite3.IntegrityError as exc:
            self._raise_unless_retry(connection, stream_id, rows)
            for refusal in (SQLITE_RUN_ACTIVE, SQLITE_RUN_NOT_ACTIVE):
                if refusal in str(exc):
                    raise ProjectRunConflict(stream_id, refusal.removeprefix("plait: ")) from None
            raise ConcurrencyError(stream_id, expected_version) from None
        # Each row is in StoredEvent's order (COLUMNS), as a read returns it.
        return [StoredEvent._make(p) for p in params]

    def _raise_unless_retry(
        self, connection: sqlite3.Connection, stream_id: str, rows: list[hashing.EncodedEvent]
    ) -> None:
        """If these event ids are stored already, the append is a retry: answer it with the
        stored positions (raised as _AlreadyStored and returned by the caller)."""
        ids = [row[0] for row in rows]
        existing = connection.execute(self._sql.find_ids(len(ids)), ids).fetchall()
        if existing:
            raise _AlreadyStored(idempotent_positions(stream_id, existing, len(rows)))

    def _writer(self) -> sqlite3.Connection:
        if self._writer_connection is None:
            self._writer_connection = self._detached_connection()
        return self._writer_connection

    def _detached_connection(self) -> sqlite3.Connection:
        """An SQLite connection with the engine's pragmas that this store closes itself."""
        raw = self.engine.raw_connection()
        connection: sqlite3.Connection = raw.driver_connection  # type: ignore[assignment]
        raw.detach()  # the pool forgets it
        return connection

    def _roll_back_writer(self, connection: sqlite3.Connection) -> None:
        """Leave no transaction open; a connection that cannot roll back is replaced."""
        try:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
        except sqlite3.Error:
            self._writer_connection = None
            self._tip = None
            connection.close()

    def _fetch(self, sql: str, params: tuple[Any, ...]) -> list[StoredEvent]:
        with self._cursor() as cursor:
            # Row by row from the cursor, not fetchall(): each driver tuple is freed as soon
            # as its StoredEvent exists, which halves the objects the garbage collector
            # tracks while a page is built (measured: 4% of a read). map() with two
            # iterables calls tuple.__new__ directly, with no Python frame per row.
            driver_rows = cursor.execute(sql, params)
            return list(map(_new_tuple, itertools.repeat(StoredEvent), driver_rows))

    def _committed(self) -> None:
        if self.checkpointer is not None:
            self.checkpointer.committed()

    def _release(self) -> None:
        if self.checkpointer is not None:
            self.checkpointer.close()
        with self._writer_lock:
            if self._writer_connection is not None:
                self._writer_connection.close()
                self._writer_connection = None
                self._tip = None


def _check_fence(connection: sqlite3.Connection, fence: Fence) -> None:
    row = connection.execute(_FENCE, (fence.run_id,)).fetchone()
    if row is None:
        raise FencedOff(fence.run_id, fence.epoch, "the run has no lease")
    if row[0] != fence.epoch:
        raise FencedOff(fence.run_id, fence.epoch, f"the lease was taken over (epoch {row[0]})")
    if not row[1]:
        raise FencedOff(fence.run_id, fence.epoch, "the lease expired by the database clock")


class _Tip:
    """The state this store's writer connection committed last: the chain's head, and the
    versions of the streams it appended to (or looked up) since."""

    __slots__ = ("data_version", "hash", "position", "versions")

    def __init__(self, data_version: int, position: int, hash_: str) -> None:
        self.data_version = data_version
        self.position = position
        self.hash = hash_
        self.versions: dict[str, int] = {}

    def committed(self, stream_id: str, last: StoredEvent) -> None:
        self.position, self.hash = last.position, last.hash
        self.versions[stream_id] = last.stream_version


class _AlreadyStored(Exception):
    """Internal: a retried append whose events are stored; carries their positions."""

    def __init__(self, positions: list[int]) -> None:
        super().__init__(positions)
        self.positions = positions
