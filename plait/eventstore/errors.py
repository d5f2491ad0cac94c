"""Errors raised by the event store. Driver exceptions never cross this boundary.

StoreError
 ├── ConcurrencyError     the stream's version was not the expected one (someone else appended)
 ├── DuplicateEventError  some, but not all, of a batch's event ids are already stored
 ├── ImmutableEventError  an update or delete of a stored event was attempted
 └── StoreUnavailable     the database cannot be reached or opened
"""

from __future__ import annotations


class StoreError(Exception):
    """Base of every error the event store raises."""


class ConcurrencyError(StoreError):
    """An append whose expected version no longer matches the stream."""

    def __init__(self, stream_id: str, expected: int | None, actual: int | None = None) -> None:
        self.stream_id = stream_id
        self.expected = expected
        self.actual = actual
        found = "" if actual is None else f", found version {actual}"
        super().__init__(f"stream {stream_id!r}: expected version {expected}{found}")


class DuplicateEventError(StoreError):
    """A retried append that only partly matches what was stored: not a safe no-op."""


class ImmutableEventError(StoreError):
    """Stored events are append-only."""


class StoreUnavailable(StoreError):
    """The database could not be reached or opened."""
