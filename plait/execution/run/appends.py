"""The one way execution appends events: one metadata shape, and the driver's fence.

Every event plait's execution writes carries the store's one metadata shape (Metadata): who
wrote it (`actor`, "<setting>@<host>"), the run it belongs to (`correlation_id`), and, where
one event follows from another, that event's id (`causation_id`). A driver's appends also
carry its fence (the run's lease and the epoch it was given): the store refuses them in the
append's own transaction once another process took the lease over, so a deposed driver
writes nothing.
"""

from __future__ import annotations

import dataclasses
import functools
import socket
from collections.abc import Sequence

from plait.domain.events import DomainEvent, RunEnded
from plait.domain.statuses import RunStatus
from plait.eventstore import EventStore, Fence, NewEvent
from plait.eventstore.codec import Metadata, encode
from plait.eventstore.streams import project_stream


def metadata_of(actor: str, run_id: str | None = None) -> Metadata:
    """This process's metadata for a run's events: "<actor>@<host>", the run as correlation."""
    return Metadata(actor=f"{actor}@{socket.gethostname()}", correlation_id=run_id)


def caused_by(metadata: Metadata, event_id: str | None) -> Metadata:
    return dataclasses.replace(metadata, causation_id=event_id)


def encoded(events: Sequence[DomainEvent], metadata: Metadata) -> list[NewEvent]:
    return [encode(event, metadata) for event in events]


async def append_now(
    store: EventStore,
    stream: str,
    events: Sequence[NewEvent],
    expected: int | None,
    fence: Fence | None = None,
) -> list[int]:
    """store.append with the fence, made by the store's writer thread (writer.py): in the
    order this process asked, and behind no read or projection page of the shared pool."""
    return await store.writer.run(
        functools.partial(store.append, stream, events, expected, fence=fence)
    )


async def append(
    store: EventStore,
    stream: str,
    events: Sequence[DomainEvent],
    *,
    expected: int | None,
    metadata: Metadata,
    fence: Fence | None = None,
) -> list[int]:
    return await append_now(store, stream, encoded(events, metadata), expected, fence)


async def end_run(
    store: EventStore,
    project_id: str,
    run_id: str,
    outcome: RunStatus,
    *,
    metadata: Metadata,
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
        metadata=metadata,
        fence=fence,
    )
