"""Append-only event store (SQLAlchemy; SQLite by default, PostgreSQL in production)."""

from plait.eventstore.anchor import ChainHead
from plait.eventstore.errors import (
    ConcurrencyError,
    DuplicateEventError,
    FencedOff,
    ImmutableEventError,
    ProjectRunConflict,
    StoreError,
    StoreUnavailable,
)
from plait.eventstore.interface import EventStore
from plait.eventstore.records import Fence, IntegrityReport, NewEvent, StoredEvent
from plait.eventstore.sql_store import SqlEventStore
from plait.eventstore.urls import configured_url

__all__ = [
    "ChainHead",
    "ConcurrencyError",
    "DuplicateEventError",
    "EventStore",
    "Fence",
    "FencedOff",
    "ImmutableEventError",
    "IntegrityReport",
    "NewEvent",
    "ProjectRunConflict",
    "SqlEventStore",
    "StoreError",
    "StoreUnavailable",
    "StoredEvent",
    "configured_url",
]
