"""The one small interface every event store implements."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Protocol

from plait.eventstore.records import IntegrityReport, NewEvent, StoredEvent


class EventStore(Protocol):
    def append(
        self, stream_id: str, events: Sequence[NewEvent], expected_version: int | None
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

    def verify(self) -> IntegrityReport:
        """Walk the hash chain and report the first event changed, removed or reordered."""
        ...

    def subscribe(self, after_position: int = 0) -> AsyncIterator[StoredEvent]:
        """Every event after `after_position`: the stored ones, then new ones as they commit."""
        ...

    def close(self) -> None: ...
