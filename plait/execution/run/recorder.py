"""Records a run's events: validated against the run's lifecycles, then appended.

The run stream is the consistency boundary and one driver owns it, so the recorder appends
with the version it last wrote: another writer in the same run shows up as a
ConcurrencyError instead of an interleaved history.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from datetime import UTC, datetime
from typing import Any

from plait.domain.events import RunEvent
from plait.domain.run import RunState
from plait.eventstore import NewEvent, SqlEventStore, StoreUnavailable
from plait.eventstore.hashing import timestamp_text
from plait.projections.codec import encode, run_stream

log = logging.getLogger(__name__)


class RunRecorder:
    def __init__(self, store: SqlEventStore, state: RunState, version: int, actor: str) -> None:
        self.store = store
        self.state = state
        self.version = version
        self.stream = run_stream(state.run_id)
        self._metadata = {
            "actor": f"{actor}@{socket.gethostname()}",
            "correlation_id": state.run_id,
        }
        self._lock = asyncio.Lock()
        self.last_position = 0
        self.plan: dict[str, Any] = {}  # the plan as RunCreated recorded it
        self.outage_tolerance = 60.0

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

    async def _append(self, stored: list[NewEvent]) -> list[int]:
        deadline = time.monotonic() + self.outage_tolerance
        delay = 0.1
        while True:
            try:
                return await asyncio.to_thread(self.store.append, self.stream, stored, self.version)
            except StoreUnavailable as exc:
                if time.monotonic() + delay > deadline:
                    raise
                log.warning("run %s paused: %s; retrying in %.1f s", self.run_id, exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
