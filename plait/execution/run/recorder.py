"""Records a run's events: validated against the run's lifecycles, then appended.

The run stream is the consistency boundary and one driver owns it, so the recorder appends
with the version it last wrote: another writer in the same run shows up as a
ConcurrencyError instead of an interleaved history.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import socket
import time
from datetime import UTC, datetime
from typing import Any

from plait.domain.events import BatchLanded, RunEvent
from plait.domain.run import RunState
from plait.eventstore import (
    ChainHead,
    EventStore,
    Fence,
    NewEvent,
    StoreError,
    StoreUnavailable,
)
from plait.eventstore.codec import Metadata, encode
from plait.eventstore.hashing import timestamp_text
from plait.eventstore.streams import run_stream

log = logging.getLogger(__name__)


class RunRecorder:
    def __init__(self, store: EventStore, state: RunState, version: int, actor: str) -> None:
        self.store = store
        self.state = state
        self.version = version
        self.stream = run_stream(state.run_id)
        self._metadata = Metadata(
            actor=f"{actor}@{socket.gethostname()}", correlation_id=state.run_id
        )
        self._lock = asyncio.Lock()
        self.last_position = 0
        self.last_head: ChainHead | None = None  # the chain's head as last anchored
        self.plan: dict[str, Any] = {}  # the plan as RunCreated recorded it
        self.outage_tolerance = 15.0
        # The driver's lease: every append carries it, and the store refuses them all once
        # another process took the lease over (FencedOff). None: not driving (no lease).
        self.fence: Fence | None = None

    @property
    def run_id(self) -> str:
        return self.state.run_id

    async def record(self, *events: RunEvent) -> None:
        """Apply to the in-memory state (refusing a lifecycle violation), then append.

        While the database is unreachable the run pauses here and retries, with the same
        event ids (so a retry after a lost acknowledgement appends nothing twice), for up to
        `outage_tolerance` seconds; then StoreUnavailable is raised and the run ends, to be
        resumed once the database is back.
        """
        if not events:
            return
        async with self._lock:
            at = timestamp_text(datetime.now(UTC))
            for event in events:
                self.state.apply(event, at)
            stored = [encode(event, self._metadata) for event in events]
            positions = await self._append(stored)
            self.version += len(events)
            self.last_position = positions[-1]
            if any(isinstance(event, BatchLanded) for event in events):
                # Anchor the audit chain at every landing (plait.eventstore.anchor).
                try:
                    self.last_head = await asyncio.to_thread(self.store.record_head)
                except StoreError as exc:  # the landing is stored; the anchor waits
                    log.warning("run %s: could not anchor the chain: %s", self.run_id, exc)

    async def _append(self, stored: list[NewEvent]) -> list[int]:
        deadline = time.monotonic() + self.outage_tolerance
        delay = 0.1
        while True:
            try:
                return await asyncio.to_thread(
                    functools.partial(
                        self.store.append, self.stream, stored, self.version, fence=self.fence
                    )
                )
            except StoreUnavailable as exc:
                if time.monotonic() + delay > deadline:
                    raise
                log.warning("run %s paused: %s; retrying in %.1f s", self.run_id, exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
