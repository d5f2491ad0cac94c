"""The SQLAlchemy event store: SQLite by default, PostgreSQL in production.

Dialect branches are only where the two really differ: PostgreSQL appends in one round trip
through the `plait_append` function (installed by the migrations); SQLite appends inside a
BEGIN IMMEDIATE transaction, which already serialises writers.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, bindparam, text
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from plait.eventstore import hashing, migrate
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
_SELECT_ALL = text(
    f"SELECT {_COLUMNS} FROM plait_events WHERE position > :after ORDER BY position LIMIT :limit"
)
_SELECT_STREAM = text(
    f"SELECT {_COLUMNS} FROM plait_events WHERE stream_id = :stream "
    "AND stream_version >= :from_version ORDER BY stream_version"
)
_STREAM_VERSION = text(
    "SELECT COALESCE(MAX(stream_version), 0) FROM plait_events WHERE stream_id = :stream"
)
_LAST_EVENT = text("SELECT position, hash FROM plait_events ORDER BY position DESC LIMIT 1")
_LAST_POSITION = text("SELECT COALESCE(MAX(position), 0) FROM plait_events")
_FIND_IDS = text(
    "SELECT position, stream_id FROM plait_events WHERE event_id IN :ids ORDER BY position"
).bindparams(bindparam("ids", expanding=True))
_INSERT = text(
    f"INSERT INTO plait_events ({_COLUMNS}) VALUES (:position, :stream_id, :stream_version, "
    ":event_id, :type, :schema_version, :data, :metadata, :recorded_at, :hash)"
)
_PG_APPEND = text(
    "SELECT * FROM plait_append(:stream, :expected, :ids, :types, :versions, :data, :metadata, "
    ":recorded_at, :recorded_text)"
)
MAX_STREAM_ID_LENGTH = 200


class SqlEventStore:
    """An append-only event store on one database. Thread-safe; one instance per process."""

    def __init__(self, url: str | URL, *, upgrade: bool = True) -> None:
        self.url = url if isinstance(url, URL) else normalise_url(url)
        self.dialect = self.url.get_backend_name()
        self.engine: Engine = build_engine(self.url)
        # Single statements need no transaction; autocommit saves PostgreSQL round trips.
        self._autocommit: Engine = (
            self.engine.execution_options(isolation_level="AUTOCOMMIT")
            if self.dialect == "postgresql"
            else self.engine
        )
        self.notifier = Notifier()
        self._closed = False
        self._lock = threading.Lock()
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
        rows = [_encode(event) for event in events]
        if self.dialect == "postgresql":
            positions = self._guard(
                lambda: self._append_postgres(stream_id, rows, expected_version, recorded_at)
            )
        else:
            positions = self._guard(
                lambda: self._append_sqlite(stream_id, rows, expected_version, recorded_at)
            )
        self.notifier.notify(positions[-1])
        return positions

    def _append_postgres(
        self,
        stream_id: str,
        rows: list[dict[str, Any]],
        expected_version: int | None,
        recorded_at: datetime,
    ) -> list[int]:
        params = {
            "stream": stream_id,
            "expected": expected_version,
            "ids": [r["event_id"] for r in rows],
            "types": [r["type"] for r in rows],
            "versions": [r["schema_version"] for r in rows],
            "data": [r["data"] for r in rows],
            "metadata": [r["metadata"] for r in rows],
            "recorded_at": recorded_at,
            "recorded_text": hashing.timestamp_text(recorded_at),
        }
        try:
            with self._autocommit.connect() as conn:
                return [int(p) for (p,) in conn.execute(_PG_APPEND, params)]
        except DBAPIError as exc:
            sqlstate = getattr(exc.orig, "sqlstate", None)
            if sqlstate == "PL001":
                actual = getattr(getattr(exc.orig, "diag", None), "message_detail", None)
                raise ConcurrencyError(
                    stream_id, expected_version, int(actual) if actual else None
                ) from None
            if sqlstate == "PL002":
                raise DuplicateEventError(
                    f"stream {stream_id!r}: some of these event ids are already stored"
                ) from None
            if sqlstate == "23505":
                raise ConcurrencyError(stream_id, expected_version) from None
            raise

    def _append_sqlite(
        self,
        stream_id: str,
        rows: list[dict[str, Any]],
        expected_version: int | None,
        recorded_at: datetime,
    ) -> list[int]:
        ids = [r["event_id"] for r in rows]
        with self.engine.connect().execution_options(**{WRITE_OPTION: True}) as conn:
            with conn.begin():
                existing = conn.execute(_FIND_IDS, {"ids": ids}).all()
                if existing:
                    return _idempotent_positions(stream_id, existing, len(rows))
                current = int(conn.execute(_STREAM_VERSION, {"stream": stream_id}).scalar_one())
                if expected_version is not None and expected_version != current:
                    raise ConcurrencyError(stream_id, expected_version, current)
                last = conn.execute(_LAST_EVENT).first()
                position, previous = (int(last[0]), str(last[1])) if last else (0, None)
                params = _chain_rows(
                    stream_id, rows, current, position, previous, recorded_at, sqlite=True
                )
                try:
                    conn.execute(_INSERT, params)
                except IntegrityError:
                    raise ConcurrencyError(stream_id, expected_version) from None
            return [p["position"] for p in params]

    # -- reading -----------------------------------------------------------------------------

    def read_all(self, after_position: int = 0, limit: int = 1000) -> list[StoredEvent]:
        def read() -> list[StoredEvent]:
            with self._autocommit.connect() as conn:
                result = conn.execute(_SELECT_ALL, {"after": after_position, "limit": limit})
                return [_decode(row) for row in result]

        return self._guard(read)

    def read_stream(self, stream_id: str, from_version: int = 1) -> list[StoredEvent]:
        def read() -> list[StoredEvent]:
            with self._autocommit.connect() as conn:
                result = conn.execute(
                    _SELECT_STREAM, {"stream": stream_id, "from_version": from_version}
                )
                return [_decode(row) for row in result]

        return self._guard(read)

    def stream_version(self, stream_id: str) -> int:
        def read() -> int:
            with self._autocommit.connect() as conn:
                return int(conn.execute(_STREAM_VERSION, {"stream": stream_id}).scalar_one())

        return self._guard(read)

    def last_position(self) -> int:
        def read() -> int:
            with self._autocommit.connect() as conn:
                return int(conn.execute(_LAST_POSITION).scalar_one())

        return self._guard(read)

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
                        ok=False, checked=checked, first_bad_position=event.position,
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

    # -- housekeeping ------------------------------------------------------------------------

    def connect(self) -> Connection:
        """A connection for projections that keep their own tables in the same database."""
        return self.engine.connect()

    def write_connection(self) -> Connection:
        """A connection whose transactions take SQLite's write lock up front."""
        return self.engine.connect().execution_options(**{WRITE_OPTION: True})

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self.notifier.close()
        self.engine.dispose()

    def _guard(self, operation: Callable[[], T]) -> T:
        """Run a database operation, turning driver errors into store errors."""
        try:
            return operation()
        except StoreError:
            raise
        except OperationalError as exc:
            raise StoreUnavailable(
                f"database {display_url(self.url)} is unavailable: {_first_line(exc.orig)}"
            ) from None
        except DBAPIError as exc:
            message = _first_line(exc.orig)
            if "append-only" in message:
                raise ImmutableEventError(message) from None
            raise StoreError(f"database error: {message}") from None


def _check_stream_id(stream_id: str) -> None:
    if not stream_id or len(stream_id) > MAX_STREAM_ID_LENGTH or "\x00" in stream_id:
        raise ValueError(
            f"stream id must be 1-{MAX_STREAM_ID_LENGTH} characters without NUL: {stream_id!r}"
        )


def _encode(event: NewEvent) -> dict[str, Any]:
    if not event.type or len(event.type) > 100:
        raise ValueError(f"event type must be 1-100 characters: {event.type!r}")
    return {
        "event_id": str(event.event_id),
        "type": event.type,
        "schema_version": event.schema_version,
        "data": hashing.canonical_json(event.data),
        "metadata": hashing.canonical_json(event.metadata),
    }


def _chain_rows(
    stream_id: str,
    rows: list[dict[str, Any]],
    current_version: int,
    last_position: int,
    previous_hash: str | None,
    recorded_at: datetime,
    *,
    sqlite: bool,
) -> list[dict[str, Any]]:
    previous = previous_hash or hashing.GENESIS_HASH
    # SQLite keeps SQLAlchemy's naive-UTC text spelling, so any reader parses it the same way.
    stored_at: Any = recorded_at.replace(tzinfo=None).isoformat(sep=" ") if sqlite else recorded_at
    out = []
    for offset, row in enumerate(rows, start=1):
        version = current_version + offset
        digest = hashing.content_digest(
            stream_id=stream_id,
            stream_version=version,
            event_id=row["event_id"],
            type=row["type"],
            schema_version=row["schema_version"],
            data_json=row["data"],
            metadata_json=row["metadata"],
            recorded_at=recorded_at,
        )
        previous = hashing.chain(previous, digest)
        out.append(
            {
                **row,
                "position": last_position + offset,
                "stream_id": stream_id,
                "stream_version": version,
                "recorded_at": stored_at,
                "hash": previous,
            }
        )
    return out


def _idempotent_positions(stream_id: str, existing: Sequence[Any], wanted: int) -> list[int]:
    if len(existing) == wanted and all(row[1] == stream_id for row in existing):
        return [int(row[0]) for row in existing]
    raise DuplicateEventError(f"stream {stream_id!r}: some of these event ids are already stored")


def _decode(row: Any) -> StoredEvent:
    recorded_at = row[8]
    if isinstance(recorded_at, str):
        recorded_at = datetime.fromisoformat(recorded_at)
    if recorded_at.tzinfo is None:
        recorded_at = recorded_at.replace(tzinfo=UTC)
    return StoredEvent(
        position=int(row[0]),
        stream_id=row[1],
        stream_version=int(row[2]),
        event_id=row[3],
        type=row[4],
        schema_version=int(row[5]),
        data_json=row[6],
        metadata_json=row[7],
        recorded_at=recorded_at,
        hash=row[9],
    )


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
        recorded_at=event.recorded_at,
    )
    if hashing.chain(previous, digest) != event.hash:
        return f"event {event.event_id} ({event.type}) does not match its hash: it was altered"
    return None


def _first_line(error: object) -> str:
    return (str(error).strip().splitlines() or ["unknown error"])[0]
