"""The SQL event store's shared base: everything but the append, on one database.

`SqlEventStore(url)` opens the store for the URL's backend: it returns the subclass that
the backend registered (sqlite_store.SqliteEventStore, postgres_store.PostgresEventStore),
imported only when a URL of that backend is opened, so an SQLite user never imports psycopg.
The subclasses hold only what really differs between the two: the append (one round trip
through plait_append on PostgreSQL, a BEGIN IMMEDIATE transaction on SQLite's single writer),
how rows come back, and which driver errors mean "unavailable".

Appends and reads go straight to the DBAPI cursor: SQLAlchemy's statement machinery costs
more than the SQLite work itself. Everything else uses SQLAlchemy.
"""

from __future__ import annotations

import contextlib
import importlib
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from typing import Any, ClassVar, Self, TypeVar

from sqlalchemy import Connection, Engine
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError, OperationalError

from plait.eventstore import hashing, migrate
from plait.eventstore.anchor import ANCHOR_SECONDS, ChainHead, HeadFile, head_file_for
from plait.eventstore.checkpoints import WalCheckpointer
from plait.eventstore.engines import WRITE_OPTION, build_engine
from plait.eventstore.errors import (
    ImmutableEventError,
    StoreError,
    StoreUnavailable,
)
from plait.eventstore.notify import Notifier
from plait.eventstore.records import (
    Fence,
    IntegrityReport,
    NewEvent,
    StoredEvent,
    check_stream_id,
    encode_event,
    idempotent_positions,
)
from plait.eventstore.statements import Statements
from plait.eventstore.subscription import feed_for
from plait.eventstore.urls import display_url, normalise_url
from plait.eventstore.verification import verify_chain
from plait.eventstore.writer import SerialWriter

T = TypeVar("T")

# The module of each backend's store class, imported when a URL of that backend is opened.
BACKENDS = {
    "sqlite": ("plait.eventstore.sqlite_store", "SqliteEventStore"),
    "postgresql": ("plait.eventstore.postgres_store", "PostgresEventStore"),
}


class SqlEventStore:
    """An append-only event store on one database. Thread-safe; one instance per process."""

    # Filled in by each backend: its parameter mark, and the driver errors that mean the
    # database is unreachable / that a statement failed.
    MARK: ClassVar[str] = "?"
    UNAVAILABLE: ClassVar[tuple[type[Exception], ...]] = ()
    DRIVER_ERRORS: ClassVar[tuple[type[Exception], ...]] = ()
    HANDS_OVER: ClassVar[bool] = False  # its _append gives the feeds what it stored itself

    def __new__(cls, url: str | URL, **_options: Any) -> Self:
        if cls is not SqlEventStore:
            return super().__new__(cls)
        parsed = url if isinstance(url, URL) else normalise_url(url)
        module, name = BACKENDS[parsed.get_backend_name()]
        backend: type[Self] = getattr(importlib.import_module(module), name)
        return backend.__new__(backend, url)

    def __init__(
        self, url: str | URL, *, upgrade: bool = True, sqlite_synchronous: str | None = None
    ) -> None:
        self.url = url if isinstance(url, URL) else normalise_url(url)
        self.dialect = self.url.get_backend_name()
        self.engine: Engine = build_engine(self.url, synchronous=sqlite_synchronous)
        self._hot = self.engine  # the engine of the hot paths' connections
        self._sql = Statements(self.MARK)
        # SQLite files: WAL checkpoints on a thread of their own (sqlite_store.py).
        self.checkpointer: WalCheckpointer | None = None
        self.notifier = Notifier()
        self.writer = SerialWriter()  # this process's appends from event loops (writer.py)
        self._closed = False
        self._lock = threading.Lock()
        # Operations in flight: close() waits for them, so no thread is left holding a
        # connection of a disposed pool.
        self._busy = 0
        self._idle = threading.Condition(self._lock)
        head_path = head_file_for(self.url)
        self.head_file = HeadFile(head_path) if head_path is not None else None
        self._anchor_due = 0.0
        if upgrade:
            self._guard(lambda: migrate.upgrade(self.engine))

    def __repr__(self) -> str:
        return f"SqlEventStore({display_url(self.url)!r})"

    def append(
        self,
        stream_id: str,
        events: Sequence[NewEvent],
        expected_version: int | None,
        *,
        fence: Fence | None = None,
    ) -> list[int]:
        check_stream_id(stream_id)
        if not events:
            return []
        if expected_version is not None and expected_version < 0:
            raise ValueError("expected_version must be >= 0 (or None for any)")
        recorded_at = datetime.now(UTC)
        rows = list(map(encode_event, events))
        if len({row[0] for row in rows}) != len(rows):
            raise ValueError("the event ids of one append must be distinct")
        positions = self._guard(
            lambda: self._append(stream_id, rows, expected_version, recorded_at, fence)
        )
        if not self.HANDS_OVER:
            self.notifier.notify(positions[-1])
        if self.head_file is not None and time.monotonic() >= self._anchor_due:
            self.record_head()
        return positions

    def _append(
        self,
        stream_id: str,
        rows: list[hashing.EncodedEvent],
        expected_version: int | None,
        recorded_at: datetime,
        fence: Fence | None,
    ) -> list[int]:
        """The backend's append: one transaction, fenced, chained, idempotent."""
        raise NotImplementedError

    def record_head(self) -> ChainHead | None:
        """Write the chain's head to the head file now (see anchor.py); returns it. A head
        file whose head is no longer in the chain is left as it is: it is the evidence."""
        self._anchor_due = time.monotonic() + ANCHOR_SECONDS
        head = self.head()
        if head is not None and self.head_file is not None and self._anchor_holds():
            self.head_file.write(head)
        return head

    def _anchor_holds(self) -> bool:
        assert self.head_file is not None
        try:
            recorded = self.head_file.read()
        except ValueError:
            return False
        if recorded is None:
            return True
        at = self.read_all(recorded.position - 1, 1)
        return bool(at) and (at[0].position, at[0].hash) == (recorded.position, recorded.hash)

    def head(self) -> ChainHead | None:
        """The newest event's position and hash; None for an empty store."""

        def read() -> ChainHead | None:
            with self._cursor() as cursor:
                cursor.execute(self._sql.last_event)
                row = cursor.fetchone()
            return None if row is None else ChainHead(int(row[0]), str(row[1]))

        return self._guard(read)

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
            cursor = self._driver_cursor(raw.driver_connection)
            try:
                yield cursor
            finally:
                cursor.close()
        finally:
            raw.close()

    def _driver_cursor(self, connection: Any) -> Any:
        return connection.cursor()

    def _fetch(self, sql: str, params: tuple[Any, ...]) -> list[StoredEvent]:
        raise NotImplementedError

    def _scalar(self, sql: str, params: tuple[Any, ...]) -> int:
        with self._cursor() as cursor:
            cursor.execute(sql, params)
            return int(cursor.fetchone()[0])

    def _stored_positions(self, stream_id: str, event_ids: Sequence[str]) -> list[int] | None:
        """The positions of a retried append's events, or None if none of them is stored."""
        with self._cursor() as cursor:
            cursor.execute(self._sql.find_ids(len(event_ids)), list(event_ids))
            existing = cursor.fetchall()
        return idempotent_positions(stream_id, existing, len(event_ids)) if existing else None

    def verify(
        self,
        page_size: int = 5000,
        expect_head: ChainHead | None = None,
        anchors: Sequence[tuple[str, ChainHead]] = (),
    ) -> IntegrityReport:
        """Walk the hash chain, then check it against its anchors: the head file,
        `expect_head` (a head the user saved) and `anchors` (e.g. repository refs)."""
        return verify_chain(self.read_all, self.head_file, page_size, expect_head, anchors)

    # -- following ---------------------------------------------------------------------------

    def subscribe(self, after_position: int = 0) -> AsyncIterator[StoredEvent]:
        return feed_for(self).subscribe(after_position)

    def subscribe_ticking(
        self, after_position: int, tick: float | None
    ) -> AsyncIterator[StoredEvent | None]:
        """subscribe(), plus a None whenever `tick` seconds pass without an event."""
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
        """Transactions take SQLite's write lock up front (and SqliteEventStore.append_lock)."""
        lock, engine = self.append_lock(), self.engine
        with lock, self._in_flight(), self._reachable(), engine.connect() as connection:
            yield connection.execution_options(**{WRITE_OPTION: True})
        self._committed()

    def append_lock(self) -> AbstractContextManager[object]:
        return contextlib.nullcontext()

    def _committed(self) -> None:
        """A write of this process committed (SQLite counts them for its checkpoints)."""

    @contextmanager
    def _reachable(self) -> Iterator[None]:
        try:
            yield
        except OperationalError as exc:
            raise StoreUnavailable(
                f"database {display_url(self.url)} is unavailable: {first_line(exc.orig)}"
            ) from None

    @contextmanager
    def _in_flight(self) -> Iterator[None]:
        self._enter()
        try:
            yield
        finally:
            self._leave()

    def _enter(self) -> None:
        with self._lock:
            if self._closed:
                raise StoreUnavailable(f"{self!r} is closed")
            self._busy += 1

    def _leave(self) -> None:
        with self._lock:
            self._busy -= 1
            # Only close() waits for the count to drop, and only once it has set _closed.
            if self._busy == 0 and self._closed:
                self._idle.notify_all()

    def close(self, timeout: float = 30.0) -> None:
        """Finish queued appends, anchor the chain, refuse new work, wait, release all."""
        self.writer.close()
        if self.head_file is not None and not self._closed:
            with contextlib.suppress(StoreError):  # the database is gone: the last anchor stands
                self.record_head()
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._idle.wait_for(lambda: self._busy == 0, timeout=timeout)
        self.notifier.close()
        self._release()
        self.engine.dispose()
        if self._hot is not self.engine:
            self._hot.dispose()

    def _release(self) -> None:
        """Close the backend's own connections and threads, after the last operation."""

    def _guard(self, operation: Callable[[], T]) -> T:
        """Run a database operation, turning driver errors into store errors."""
        failed: tuple[type[Exception], ...] = (DBAPIError, *self.DRIVER_ERRORS)
        try:
            # _in_flight() spelled out: a generator context manager costs every append 1 us.
            self._enter()
            try:
                return operation()
            finally:
                self._leave()
        except StoreError:
            raise
        except OperationalError as exc:
            raise StoreUnavailable(
                f"database {display_url(self.url)} is unavailable: {first_line(exc.orig)}"
            ) from None
        except self.UNAVAILABLE as exc:
            raise StoreUnavailable(
                f"database {display_url(self.url)} is unavailable: {first_line(exc)}"
            ) from None
        except failed as exc:
            message = first_line(getattr(exc, "orig", None) or exc)
            if "append-only" in message:
                raise ImmutableEventError(message) from None
            raise StoreError(f"database error: {message}") from None


def first_line(error: object) -> str:
    return (str(error).strip().splitlines() or ["unknown error"])[0]
