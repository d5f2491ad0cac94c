"""Errors raised by the event store. Driver exceptions never cross this boundary.

StoreError
 ├── ConcurrencyError     the stream's version was not the expected one (someone else appended)
 │    └── ProjectRunConflict  a RunStarted while the project has an active run, or a RunEnded
 │                            for a run that is not the project's active run
 ├── DuplicateEventError  some, but not all, of a batch's event ids are already stored
 ├── FencedOff            an append carried a lease epoch that is no longer the run's lease
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


class ProjectRunConflict(ConcurrencyError):
    """One active run per project: the store refused a start or an end that would break it."""

    def __init__(self, stream_id: str, problem: str) -> None:
        super().__init__(stream_id, None)
        self.problem = problem
        self.args = (f"stream {stream_id!r}: {problem}",)

    def __str__(self) -> str:
        return str(self.args[0])


class FencedOff(StoreError):
    """The append's fence (run lease and epoch) is stale: another process took the lease, or
    it expired by the database's clock. Nothing was appended; the caller no longer drives."""

    def __init__(self, run_id: str, epoch: int, problem: str) -> None:
        super().__init__(f"run {run_id}: lease epoch {epoch} is fenced off: {problem}")
        self.run_id = run_id
        self.epoch = epoch


class DuplicateEventError(StoreError):
    """A retried append that only partly matches what was stored: not a safe no-op."""


class ImmutableEventError(StoreError):
    """Stored events are append-only."""


class StoreUnavailable(StoreError):
    """The database could not be reached or opened."""
