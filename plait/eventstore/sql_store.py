"""The SQL event store: `SqlEventStore(url)` opens the backend's store (see base.py)."""

from __future__ import annotations

from plait.eventstore.base import SqlEventStore
from plait.eventstore.records import MAX_STREAM_ID_LENGTH

__all__ = ["MAX_STREAM_ID_LENGTH", "SqlEventStore"]
