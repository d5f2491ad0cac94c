"""The SQLAlchemy event store: SQLite by default, PostgreSQL in production.

Dialect branches are only where the two really differ: PostgreSQL appends in one round trip
through the `plait_append` function (installed by the migrations); SQLite appends inside a
BEGIN IMMEDIATE transaction, which already serialises writers.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar

import psycopg
from sqlalchemy import Connection, Engine
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError, OperationalError

from plait.eventstore import hashing, migrate, pg_arrays
from plait.eventstore.checkpoints import WalCheckpointer
from plait.eventstore.engines import WRITE_OPTION, build_engine
from plait.eventstore.errors import (
    ConcurrencyError,
    DuplicateEventError,
    ImmutableEventError,
    StoreError,
    StoreUnavailable,
)
from plait.eventstore.notify import Notifier
from plait.eventstore.records import IntegrityReport, NewEvent, StoredEvent
from plait.eventstore.urls import display_url, normalise_url

T = TypeVar("T")

_COLUMNS = (
    "position, stream_id, stream_version, event_id, type, schema_version, "
    "data, metadata, recorded_at, hash"
)
MAX_STREAM_ID_LENGTH = 200


class _Sql:
    """The hot-path statements in the driver's own parameter style (qmark or format).

    Appends and reads go straight to the DBAPI cursor: SQLAlchemy's statement machinery
    costs more than the SQLite work itself. Everything else uses SQLAlchemy.
    """

    def __init__(self, mark: str) -> None:
        m = mark
        self.select_all = (
            f"SELECT {_COLUMNS} FROM plait_events WHERE position > {m} ORDER BY position LIMIT {m}"
        )
        self.select_stream = (
            f"SELECT {_COLUMNS} FROM plait_events WHERE stream_id = {m} "
            f"AND stream_version >= {m} ORDER BY stream_version"
        )
        self.stream_version = (
            f"SELECT COALESCE(MAX(stream_version), 0) FROM plait_events WHERE stream_id = {m}"
        )
        self.last_position = "SELECT COALESCE(MAX(position), 0) FROM plait_events"
        self.last_event = "SELECT position, hash FROM plait_events ORDER BY position DESC LIMIT 1"
        # Everything an SQLite append must know, in one statement.
        self.sqlite_append_state = (
            f"SELECT (SELECT COALESCE(MAX(stream_version), 0) FROM plait_events "
            f"WHERE stream_id = {m}), last.position, last.hash FROM (SELECT 1) "
            f"LEFT JOIN ({self.last_event}) AS last"
        )
        self.insert = f"INSERT INTO plait_events ({_COLUMNS}) VALUES ({', '.join([m] * 10)})"
        # The arrays go in binary (%b), packed by pg_arrays: psycopg quotes each element of a
        # text-format array with a regular expression, which cost more than the whole append
        # in the database.
        self.pg_append = "SELECT * FROM plait_append(%s, %s, %b, %b, %b, %b, %b, %s, %s)"

    def find_ids(self, count: int) -> str:
        marks = ", ".join([self.mark] * count)
        return (
            f"SELECT position, stream_id FROM plait_events WHERE event_id IN ({marks}) "
            "ORDER BY position"
        )

    @property
    def mark(self) -> str:
        return "?" if self.insert.endswith("?)") else "%s"


class SqlEventStore:
    """An append-only event store on one database. Thread-safe; one instance per process."""

    def __init__(self, url: str | URL, *, upgrade: bool = True) -> None:
        self.url = url if isinstance(url, URL) else normalise_url(url)
        self.dialect = self.url.get_backend_name()
        self.engine: Engine = build_engine(self.url)
        # Hot paths run single statements: on PostgreSQL they need no transaction around them,
        # and autocommit saves the BEGIN and COMMIT round trips.
        self._hot: Engine = (
            build_engine(self.url, autocommit=True) if self.dialect == "postgresql" else self.engine
        )
        self._sql = _Sql("%s" if self.dialect == "postgresql" else "?")
        self.notifier = Notifier()
        self._closed = False
        self._lock = threading.Lock()
        # Operations in flight: close() waits for them, so no thread is left holding a
        # connection of a disposed pool.
        self._busy = 0
        self._idle = threading.Condition(self._lock)
        self._writer_lock = threading.Lock()
        self._writer_connection: sqlite3.Connection | None = None
        # SQLite files: WAL checkpoints on a thread of their own, not inside commits.
        self.checkpointer = (
            WalCheckpointer(self._detached_connection)
            if self.dialect == "sqlite" and self.url.database not in (None, "", ":memory:")
            else None
        )
        if upgrade:
            self._guard(lambda: migrate.upgrade(self.engine))

    def __repr__(self) -> str:
        return f"SqlEventStore({display_url(self.url)!r})"

    # -- writing -----------------------------------------------------------------------------

    def append(
        self, stream_id: str, events: Sequence[NewEvent], expected_version: int | None
    ) -> list[int]:
        _check_stream_id(stream_id)
        if not events:
            return []
        if expected_version is not None and expected_version < 0:
            raise ValueError("expected_version must be >= 0 (or None for any)")
        recorded_at = datetime.now(UTC)
        rows = list(map(_encode, events))
        if len({row[0] for row in rows}) != len(rows):
            raise ValueError("the event ids of one append must be distinct")
        if self.dialect == "postgresql":
            positions = self._guard(
                lambda: self._append_postgres(stream_id, rows, expected_version, recorded_at)
            )
        else:
            positions = self._guard(
                lambda: self._append_sqlite(stream_id, rows, expected_version, recorded_at)
            )
        if self.dialect == "postgresql":  # SQLite's appends hand their events over themselves
            self.notifier.notify(positions[-1])
        return positions

    def _append_postgres(
        self,
        stream_id: str,
        rows: list[hashing.EncodedEvent],
        expected_version: int | None,
        recorded_at: datetime,
    ) -> list[int]:
        event_ids, types, schema_versions, data, metadata = zip(*rows, strict=True)
        params = (
            stream_id,
            expected_version,
            pg_arrays.text_array(event_ids),
            pg_arrays.text_array(types),
            pg_arrays.int4_array(schema_versions),
            pg_arrays.text_array(data),
            pg_arrays.text_array(metadata),
            recorded_at,
            hashing.timestamp_text(recorded_at),
        )
        try:
            with self._cursor() as cursor:
                cursor.execute(self._sql.pg_append, params, prepare=True)
                return [int(p) for (p,) in cursor.fetchall()]
        except psycopg.Error as exc:
            sqlstate = getattr(exc, "sqlstate", None)
            if sqlstate not in ("PL001", "23505"):  # wrong version, or an event id stored
                raise
            # A retried append shows up as one of these two; only then are the ids looked
            # up, so the usual append pays for no extra query.
            stored = self._stored_positions(stream_id, event_ids)
            if stored is not None:
                return stored
            detail = getattr(getattr(exc, "diag", None), "message_detail", None)
            actual = int(detail) if sqlstate == "PL001" and detail else None
            raise ConcurrencyError(stream_id, expected_version, actual) from None

    def _stored_positions(self, stream_id: str, event_ids: Sequence[str]) -> list[int] | None:
        """The positions of a retried append's events, or None if none of them is stored."""
        with self._cursor() as cursor:
            cursor.execute(self._sql.find_ids(len(event_ids)), list(event_ids))
            existing = cursor.fetchall()
        return _idempotent_positions(stream_id, existing, len(event_ids)) if existing else None

    def _append_sqlite(
        self,
        stream_id: str,
        rows: list[hashing.EncodedEvent],
        expected_version: int | None,
        recorded_at: datetime,
    ) -> list[int]:
        # SQLite lets one writer in at a time anyway (BEGIN IMMEDIATE), so this process keeps
        # one connection for appends: no pool checkout and reset per append.
        with self._writer_lock:
            connection = self._writer()
            connection.execute("BEGIN IMMEDIATE")
            try:
                stored = self._insert_sqlite(
                    connection, stream_id, rows, expected_version, recorded_at
                )
                connection.execute("COMMIT")
                # Still holding the write lock: the live feeds get them in commit order.
                self.notifier.notify(stored[-1].position, stored)
                positions = [event.position for event in stored]
            except _AlreadyStored as retry:
                connection.execute("ROLLBACK")
                return retry.positions
            except BaseException:
                self._roll_back_writer(connection)
                raise
        if self.checkpointer is not None:
            self.checkpointer.committed()
        return positions

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
            connection.close()

    def _insert_sqlite(
        self,
        connection: sqlite3.Connection,
        stream_id: str,
        rows: list[hashing.EncodedEvent],
        expected_version: int | None,
        recorded_at: datetime,
    ) -> list[StoredEvent]:
        """The events as stored (the row of each is in StoredEvent's order, as read)."""
        current, position, previous = connection.execute(
            self._sql.sqlite_append_state, (stream_id,)
        ).fetchone()
        # A retried append shows up as a version mismatch or a duplicate event id; only then
        # are the ids looked up, so the usual append pays for no extra query.
        if expected_version is not None and expected_version != current:
            self._raise_unless_retry(connection, stream_id, rows)
            raise ConcurrencyError(stream_id, expected_version, current)
        # SQLite keeps recorded_at in the hashed spelling: StoredEvent.recorded_text reads it
        # back as is (older rows carry "+00:00", which StoredEvent.recorded_at parses too).
        stamp = hashing.timestamp_text(recorded_at)
        first = current + 1
        hashes = hashing.chain_hashes(
            stream_id, first, rows, stamp, previous or hashing.GENESIS_HASH
        )
        start = (position or 0) + 1
        params = [
            (start + i, stream_id, first + i, *row, stamp, hash_)
            for i, (row, hash_) in enumerate(zip(rows, hashes, strict=True))
        ]
        try:
            connection.executemany(self._sql.insert, params)
        except sqlite3.IntegrityError:
            self._raise_unless_retry(connection, stream_id, rows)
            raise ConcurrencyError(stream_id, expected_version) from None
        return [StoredEvent._make(p) for p in params]

    def _raise_unless_retry(
        self, connection: sqlite3.Connection, stream_id: str, rows: list[hashing.EncodedEvent]
    ) -> None:
        """If these event ids are stored already, the append is a retry: answer it with the
        stored positions (raised as _AlreadyStored and returned by the caller)."""
        ids = [row[0] for row in rows]
        existing = connection.execute(self._sql.find_ids(len(ids)), ids).fetchall()
        if existing:
            raise _AlreadyStored(_idempotent_positions(stream_id, existing, len(rows)))

    # -- reading -----------------------------------------------------------------------------

    def read_all(self, after_position: int = 0, limit: int = 1000) -> list[StoredEvent]:
        return self._guard(lambda: self._fetch(self._sql.select_all, (after_position, limit)))

    def read_stream(self, stream_id: str, from_version: int = 1) -> list[StoredEvent]:
        return self._guard(lambda: self._fetch(self._sql.select_stream, (stream_id, from_version)))

    def stream_version(self, stream_id: str) -> int:
        return self._guard(lambda: self._scalar(self._sql.stream_version, (stream_id,)))

    def last_position(self) -> int:
        return self._guard(lambda: self._scalar(self._sql.last_position, ()))

    @contextmanager
    def _cursor(self) -> Iterator[Any]:
        raw = self._hot.raw_connection()
        try:
            driver: Any = raw.driver_connection
            # PostgreSQL: binary results (timestamps and integers parse faster than as text).
            cursor = driver.cursor(binary=True) if self.dialect == "postgresql" else driver.cursor()
            try:
                yield cursor
            finally:
                cursor.close()
        finally:
            raw.close()

    def _fetch(self, sql: str, params: tuple[Any, ...]) -> list[StoredEvent]:
        with self._cursor() as cursor:
            if self.dialect == "postgresql":
                # The row factory builds each StoredEvent inside psycopg's C row loop: the
                # binary loaders already hand back every field in its final type.
                cursor.row_factory = _stored_event_rows
                cursor.execute(sql, params, prepare=True)
                rows: list[StoredEvent] = cursor.fetchall()
                return rows
            # Row by row from the cursor, not fetchall(): each driver tuple is freed as soon
            # as its StoredEvent exists, which halves the objects the garbage collector
            # tracks while a page is built (measured: 4% of a read). map() with two
            # iterables calls tuple.__new__ directly, 15 ns a row cheaper than the partial.
            driver_rows = cursor.execute(sql, params)
            return list(map(_new_tuple, itertools.repeat(StoredEvent), driver_rows))

    def _scalar(self, sql: str, params: tuple[Any, ...]) -> int:
        with self._cursor() as cursor:
            cursor.execute(sql, params)
            return int(cursor.fetchone()[0])

    def verify(self, page_size: int = 5000) -> IntegrityReport:
        checked = 0
        expected_position = 1
        previous = hashing.GENESIS_HASH
        versions: dict[str, int] = {}
        after = 0
        while True:
            page = self.read_all(after, page_size)
            if not page:
                return IntegrityReport(ok=True, checked=checked)
            for event in page:
                problem = _check_event(event, expected_position, previous, versions)
                if problem is not None:
                    return IntegrityReport(
                        ok=False,
                        checked=checked,
                        first_bad_position=event.position,
                        problem=problem,
                    )
                checked += 1
                expected_position = event.position + 1
                previous = event.hash
                versions[event.stream_id] = event.stream_version
            after = page[-1].position

    # -- following ---------------------------------------------------------------------------

    def subscribe(self, after_position: int = 0) -> AsyncIterator[StoredEvent]:
        from plait.eventstore.subscription import feed_for

        return feed_for(self).subscribe(after_position)

    def subscribe_ticking(
        self, after_position: int, tick: float | None
    ) -> AsyncIterator[StoredEvent | None]:
        """subscribe(), plus a None whenever `tick` seconds pass without an event."""
        from plait.eventstore.subscription import feed_for

        return feed_for(self).subscribe_ticking(after_position, tick)

    # -- housekeeping ------------------------------------------------------------------------

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        """A connection for projections that keep their own tables in the same database.
        A lost or refused connection raises StoreUnavailable, as every store operation does."""
        with self._in_flight(), self._reachable(), self.engine.connect() as connection:
            yield connection

    @contextmanager
    def write_connection(self) -> Iterator[Connection]:
        """A connection whose transactions take SQLite's write lock up front. On SQLite it
        also holds this process's append lock, so an append waits for it on that lock and
        goes on the moment it commits, not after SQLite's busy handler has slept (1, 2,
        5 ms ...: the tail of every live event stream while a projection writes)."""
        lock = self._writer_lock if self.dialect == "sqlite" else contextlib.nullcontext()
        with lock, self._in_flight(), self._reachable(), self.engine.connect() as connection:
            yield connection.execution_options(**{WRITE_OPTION: True})
        if self.checkpointer is not None:
            self.checkpointer.committed()

    @contextmanager
    def _reachable(self) -> Iterator[None]:
        try:
            yield
        except OperationalError as exc:
            raise StoreUnavailable(
                f"database {display_url(self.url)} is unavailable: {_first_line(exc.orig)}"
            ) from None

    @contextmanager
    def _in_flight(self) -> Iterator[None]:
        with self._lock:
            if self._closed:
                raise StoreUnavailable(f"{self!r} is closed")
            self._busy += 1
        try:
            yield
        finally:
            with self._lock:
                self._busy -= 1
                if self._busy == 0:
                    self._idle.notify_all()

    def close(self, timeout: float = 30.0) -> None:
        """Refuse new work, wait for what is in flight, then release every connection."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._idle.wait_for(lambda: self._busy == 0, timeout=timeout)
        self.notifier.close()
        if self.checkpointer is not None:
            self.checkpointer.close()
        with self._writer_lock:
            if self._writer_connection is not None:
                self._writer_connection.close()
                self._writer_connection = None
        self.engine.dispose()
        if self._hot is not self.engine:
            self._hot.dispose()

    def _guard(self, operation: Callable[[], T]) -> T:
        """Run a database operation, turning driver errors into store errors."""
        try:
            with self._in_flight():
                return operation()
        except StoreError:
            raise
        except OperationalError as exc:
            raise StoreUnavailable(
                f"database {display_url(self.url)} is unavailable: {_first_line(exc.orig)}"
            ) from None
        except (sqlite3.OperationalError, psycopg.OperationalError) as exc:
            raise StoreUnavailable(
                f"database {display_url(self.url)} is unavailable: {_first_line(exc)}"
            ) from None
        except (DBAPIError, sqlite3.Error, psycopg.Error) as exc:
            message = _first_line(getattr(exc, "orig", None) or exc)
            if "append-only" in message:
                raise ImmutableEventError(message) from None
            raise StoreError(f"database error: {message}") from None


_new_tuple = tuple.__new__
# A C-level callable (no Python frame per row) that makes a StoredEvent from a row tuple
# whose columns are in StoredEvent's order (_COLUMNS).
_make_stored_event = functools.partial(_new_tuple, StoredEvent)


def _stored_event_rows(_cursor: Any) -> Callable[[Sequence[Any]], StoredEvent]:
    return _make_stored_event


class _AlreadyStored(Exception):
    """Internal: a retried append whose events are stored; carries their positions."""

    def __init__(self, positions: list[int]) -> None:
        super().__init__(positions)
        self.positions = positions


def _check_stream_id(stream_id: str) -> None:
    if not stream_id or len(stream_id) > MAX_STREAM_ID_LENGTH or "\x00" in stream_id:
        raise ValueError(
            f"stream id must be 1-{MAX_STREAM_ID_LENGTH} characters without NUL: {stream_id!r}"
        )


def _encode(event: NewEvent) -> hashing.EncodedEvent:
    if not event.type or len(event.type) > 100 or "\x00" in event.type:
        raise ValueError(f"event type must be 1-100 characters, without NUL: {event.type!r}")
    if not 1 <= event.schema_version <= pg_arrays.INT4_MAX:
        raise ValueError(f"schema_version must be 1-{pg_arrays.INT4_MAX}: {event.schema_version}")
    return (
        str(event.event_id),
        event.type,
        event.schema_version,
        hashing.canonical_json(event.data),
        hashing.canonical_json(event.metadata),
    )


def _idempotent_positions(stream_id: str, existing: Sequence[Any], wanted: int) -> list[int]:
    if len(existing) == wanted and all(row[1] == stream_id for row in existing):
        return [int(row[0]) for row in existing]
    raise DuplicateEventError(f"stream {stream_id!r}: some of these event ids are already stored")


def _check_event(
    event: StoredEvent, expected_position: int, previous: str, versions: dict[str, int]
) -> str | None:
    if event.position != expected_position:
        return f"position {expected_position} is missing (next stored is {event.position})"
    expected_version = versions.get(event.stream_id, 0) + 1
    if event.stream_version != expected_version:
        return (
            f"stream {event.stream_id!r} has version {event.stream_version} "
            f"where {expected_version} was expected"
        )
    digest = hashing.content_digest(
        stream_id=event.stream_id,
        stream_version=event.stream_version,
        event_id=event.event_id,
        type=event.type,
        schema_version=event.schema_version,
        data_json=event.data_json,
        metadata_json=event.metadata_json,
        recorded_at=event.recorded_text,
    )
    if hashing.chain(previous, digest) != event.hash:
        return f"event {event.event_id} ({event.type}) does not match its hash: it was altered"
    return None


def _first_line(error: object) -> str:
    return (str(error).strip().splitlines() or ["unknown error"])[0]
