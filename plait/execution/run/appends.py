"""The one way execution appends events: one metadata shape, and the driver's fence.

Every event plait's execution writes carries the same metadata: who wrote it (`actor`,
"<setting>@<host>"), the run it belongs to (`correlation_id`), and, where one event follows
from another, that event's id (`causation_id`). A driver's appends also carry its fence (the
run's lease and the epoch it was given): the store refuses them in the append's own
transaction once another process took the lease over, so a deposed driver writes nothing.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from plait.domain.events import DomainEvent, RunEnded
from plait.domain.statuses import RunStatus
from plait.eventstore import Fence, NewEvent, SqlEventStore
from plait.projections.codec import encode, project_stream


@dataclass(frozen=True)
class Provenance:
    """Who appends, for which run, because of which event."""

    actor: str
    correlation_id: str | None = None
    causation_id: str | None = None

    @classmethod
    def of(cls, actor: str, run_id: str | None = None) -> Provenance:
        return cls(f"{actor}@{socket.gethostname()}", run_id)

    def caused_by(self, event_id: str | None) -> Provenance:
        return Provenance(self.actor, self.correlation_id, event_id)

    def metadata(self) -> dict[str, Any]:
        found = {
            "actor": self.actor,
            "correlation_id": self.correlation_id,
            "causation_id": self.causation_id,
        }
        return {key: value for key, value in found.items() if value is not None}


def encoded(events: Sequence[DomainEvent], provenance: Provenance) -> list[NewEvent]:
    metadata = provenance.metadata()
    return [encode(event, metadata) for event in events]


def append_now(
    store: SqlEventStore,
    stream: str,
    events: Sequence[NewEvent],
    expected: int | None,
    fence: Fence | None = None,
) -> list[int]:
    """store.append with the fence (blocking: call it in a thread)."""
    return store.append(stream, events, expected, fence=fence)


async def append(
    store: SqlEventStore,
    stream: str,
    events: Sequence[DomainEvent],
    *,
    expected: int | None,
    provenance: Provenance,
    fence: Fence | None = None,
) -> list[int]:
    stored = encoded(events, provenance)
    return await asyncio.to_thread(append_now, store, stream, stored, expected, fence)


async def end_run(
    store: SqlEventStore,
    project_id: str,
    run_id: str,
    outcome: RunStatus,
    *,
    provenance: Provenance,
    fence: Fence | None = None,
    expected: int | None = None,
) -> None:
    """RunEnded on the project stream: the one place a run's end is written. Its outcome
    is the caller's stored state's (never a status it has not stored)."""
    event = RunEnded(project_id=project_id, run_id=run_id, outcome=outcome)
    await append(
        store,
        project_stream(project_id),
        [event],
        expected=expected,
        provenance=provenance,
        fence=fence,
    )
