"""Append-only event store (SQLAlchemy; SQLite by default, PostgreSQL in production)."""

from plait.eventstore.errors import (
    ConcurrencyError,
    DuplicateEventError,
    ImmutableEventError,
    StoreError,
    StoreUnavailable,
)
from plait.eventstore.interface import EventStore
from plait.eventstore.records import IntegrityReport, NewEvent, StoredEvent
from plait.eventstore.sql_store import SqlEventStore
from plait.eventstore.urls import configured_url

__all__ = [
    "ConcurrencyError",
    "DuplicateEventError",
    "EventStore",
    "ImmutableEventError",
    "IntegrityReport",
    "NewEvent",
    "SqlEventStore",
    "StoreError",
    "StoreUnavailable",
    "StoredEvent",
    "configured_url",
]
