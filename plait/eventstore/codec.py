"""Between domain events and stored events: encoding, with one metadata shape, and decoding.

Every stored event's metadata has one shape, `Metadata`: who caused it (actor), the request
or run it belongs to (correlation id), and the event or command that caused it (causation
id). Keys that are not set are left out of the stored JSON.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from plait.domain.events import DomainEvent, from_stored, to_data
from plait.eventstore.records import NewEvent, StoredEvent


@dataclass(frozen=True, kw_only=True, slots=True)
class Metadata:
    """The envelope's metadata: actor, correlation id and causation id."""

    actor: str
    correlation_id: str | None = None
    causation_id: str | None = None

    def to_dict(self) -> dict[str, str]:
        fields = {
            "actor": self.actor,
            "correlation_id": self.correlation_id,
            "causation_id": self.causation_id,
        }
        return {key: value for key, value in fields.items() if value is not None}

    @classmethod
    def of(cls, stored: StoredEvent) -> Metadata:
        """The metadata a stored event carries (events of older plait may lack fields)."""
        raw = stored.metadata
        return cls(
            actor=str(raw.get("actor", "")),
            correlation_id=raw.get("correlation_id"),
            causation_id=raw.get("causation_id"),
        )


def encode(event: DomainEvent, metadata: Metadata | Mapping[str, Any] | None = None) -> NewEvent:
    if isinstance(metadata, Metadata):
        stored_metadata: Mapping[str, Any] = metadata.to_dict()
    else:
        stored_metadata = dict(metadata or {})
    return NewEvent(
        type=event.TYPE,
        schema_version=event.SCHEMA_VERSION,
        data=to_data(event),
        metadata=stored_metadata,
    )


def decode(stored: StoredEvent) -> DomainEvent:
    return from_stored(stored.type, stored.schema_version, stored.data)
