"""The PostgreSQL event store: an append is one round trip through plait_append.

The function (installed by the migrations, ddl.py and ddl_0006.py) takes a table lock, so
global positions are handed out in commit order and a tailing reader never skips one; checks
the expected version; computes the hash chain with the same formula as hashing.py; inserts
and notifies listeners. plait_append_fenced also checks the run's lease first. Hot paths run
single statements on an autocommit engine: no BEGIN and COMMIT round trips.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, ClassVar

import psycopg
from sqlalchemy.engine import URL

from plait.eventstore import hashing, pg_arrays
from plait.eventstore.base import SqlEventStore
from plait.eventstore.engines import build_engine
from plait.eventstore.errors import ConcurrencyError, FencedOff, ProjectRunConflict
from plait.eventstore.records import Fence, StoredEvent

_APPEND = "SELECT * FROM plait_append(%s, %s, %b, %b, %b, %b, %b, %s, %s)"
_APPEND_FENCED = "SELECT * FROM plait_append_fenced(%s, %s, %b, %b, %b, %b, %b, %s, %s, %s, %s)"
# A C-level callable (no Python frame per row) that makes a StoredEvent from a row tuple
# whose columns are in StoredEvent's order (statements.COLUMNS).
_make_stored_event = functools.partial(tuple.__new__, StoredEvent)


class PostgresEventStore(SqlEventStore):
    MARK: ClassVar[str] = "%s"
    UNAVAILABLE: ClassVar[tuple[type[Exception], ...]] = (psycopg.OperationalError,)
    DRIVER_ERRORS: ClassVar[tuple[type[Exception], ...]] = (psycopg.Error,)

    def __init__(
        self, url: str | URL, *, upgrade: bool = True, sqlite_synchronous: str | None = None
    ) -> None:
        super().__init__(url, upgrade=upgrade)
        self._hot = build_engine(self.url, autocommit=True)

    def _append(
        self,
        stream_id: str,
        rows: list[hashing.EncodedEvent],
        expected_version: int | None,
        recorded_at: datetime,
        fence: Fence | None,
    ) -> list[int]:
        event_ids, types, schema_versions, data, metadata = zip(*rows, strict=True)
        # The arrays go in binary (%b), packed by pg_arrays: psycopg quotes each element of a
        # text-format array with a regular expression, which cost more than the whole append
        # in the database.
        params: tuple[object, ...] = (
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
        sql = _APPEND
        if fence is not None:
            params, sql = (*params, fence.run_id, fence.epoch), _APPEND_FENCED
        try:
            with self._cursor() as cursor:
                cursor.execute(sql, params, prepare=True)
                return [int(p) for (p,) in cursor.fetchall()]
        except psycopg.Error as exc:
            return self._refused(exc, stream_id, event_ids, expected_version, fence)

    def _refused(
        self,
        exc: psycopg.Error,
        stream_id: str,
        event_ids: Sequence[str],
        expected_version: int | None,
        fence: Fence | None,
    ) -> list[int]:
        """What a refused append means: a retry (its stored positions), or an error."""
        sqlstate = exc.sqlstate
        message = exc.diag.message_primary or str(exc)
        if sqlstate == "PL005" and fence is not None:
            raise FencedOff(fence.run_id, fence.epoch, message) from None
        # A wrong version, an event id stored, a project's run refused: a retried append
        # shows up as one of these, and only then are the ids looked up, so the usual
        # append pays for no extra query.
        if sqlstate not in ("PL001", "23505", "PL004"):
            raise exc
        stored = self._stored_positions(stream_id, event_ids)
        if stored is not None:
            return stored
        if sqlstate == "PL004":
            raise ProjectRunConflict(stream_id, message) from None
        detail = exc.diag.message_detail
        actual = int(detail) if sqlstate == "PL001" and detail else None
        raise ConcurrencyError(stream_id, expected_version, actual) from None

    def _driver_cursor(self, connection: Any) -> Any:
        # Binary results: timestamps and integers parse faster than as text.
        return connection.cursor(binary=True)

    def _fetch(self, sql: str, params: tuple[Any, ...]) -> list[StoredEvent]:
        with self._cursor() as cursor:
            # The row factory builds each StoredEvent inside psycopg's C row loop: the
            # binary loaders already hand back every field in its final type.
            cursor.row_factory = _stored_event_rows
            cursor.execute(sql, params, prepare=True)
            rows: list[StoredEvent] = cursor.fetchall()
            return rows


def _stored_event_rows(_cursor: Any) -> Callable[[Sequence[Any]], StoredEvent]:
    return _make_stored_event
