"""The one small interface every event store implements."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractContextManager
from typing import Protocol

from sqlalchemy import Connection
from sqlalchemy.engine import URL

from plait.eventstore.anchor import ChainHead
from plait.eventstore.notify import Notifier
from plait.eventstore.records import Fence, IntegrityReport, NewEvent, StoredEvent
from plait.eventstore.writer import SerialWriter


class EventStore(Protocol):
    # "sqlite" or "postgresql": for the few readers with SQL of their own (projections).
    dialect: str
    url: URL
    # Wakes this process's live feeds when this process appends (subscription.py).
    notifier: Notifier
    # Makes the appends coroutines ask for, in order, on one thread of its own (writer.py).
    writer: SerialWriter

    def append(
        self,
        stream_id: str,
        events: Sequence[NewEvent],
        expected_version: int | None,
        *,
        fence: Fence | None = None,
    ) -> list[int]:
        """Append `events` to `stream_id` in one transaction and return their global positions.

        `expected_version` is the stream's version the caller decided on (0 = the stream must
        be new); None appends whatever the version is. A mismatch raises ConcurrencyError and
        appends nothing. If every event id is already stored (a retried command), nothing is
        appended and the stored positions are returned; if only some are, DuplicateEventError.
        ValueError, before anything reaches the database: a stream id that is empty, longer
        than 200 characters or holds NUL, a negative expected version, an event type
        that is empty, longer than 100 characters or holds NUL, a schema version outside
        1..2**31-1, or an event id given twice in one call.

        `fence`: the append is stored only if, in the same transaction, the run's lease
        still has the fence's epoch and has not expired by the database's clock; otherwise
        FencedOff and nothing is appended. A RunStarted on a project stream while the
        project has an active run, or a RunEnded that does not end the project's active run,
        raises ProjectRunConflict (a ConcurrencyError), whoever appends it.
        """
        ...

    def read_stream(self, stream_id: str, from_version: int = 1) -> list[StoredEvent]:
        """The stream's events from `from_version` on, in version order."""
        ...

    def read_all(self, after_position: int = 0, limit: int = 1000) -> list[StoredEvent]:
        """Up to `limit` events after `after_position`, in global order with no gaps."""
        ...

    def last_position(self) -> int: ...

    def stream_version(self, stream_id: str) -> int:
        """The stream's current version; 0 for a stream with no events."""
        ...

    def verify(
        self,
        page_size: int = 5000,
        expect_head: ChainHead | None = None,
        anchors: Sequence[tuple[str, ChainHead]] = (),
    ) -> IntegrityReport:
        """Walk the hash chain and check it against its anchors (the head file,
        `expect_head`, and `anchors` named by where they were kept): report the first event
        changed, removed or reordered, or a history cut short or rewritten."""
        ...

    def head(self) -> ChainHead | None:
        """The newest event's position and hash."""
        ...

    def record_head(self) -> ChainHead | None:
        """Anchor the chain now: write its head outside the events table."""
        ...

    def subscribe(self, after_position: int = 0) -> AsyncIterator[StoredEvent]:
        """Every event after `after_position`: the stored ones, then new ones as they commit."""
        ...

    def subscribe_ticking(
        self, after_position: int, tick: float | None
    ) -> AsyncIterator[StoredEvent | None]:
        """subscribe(), plus a None whenever `tick` seconds pass without an event."""
        ...

    def connect(self) -> AbstractContextManager[Connection]:
        """A connection for tables kept beside the events (projections, leases)."""
        ...

    def write_connection(self) -> AbstractContextManager[Connection]:
        """A connection whose transactions take SQLite's write lock up front."""
        ...

    def close(self, timeout: float = 30.0) -> None: ...
