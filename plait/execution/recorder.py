"""Records a run's events: validated against the run's lifecycles, then appended.

The run stream is the consistency boundary and one driver owns it, so the recorder appends
with the version it last wrote: another writer in the same run shows up as a
ConcurrencyError instead of an interleaved history.
"""

from __future__ import annotations

import asyncio
import socket
from datetime import UTC, datetime
from typing import Any

from plait.domain.events import RunEvent
from plait.domain.run import RunState
from plait.eventstore import SqlEventStore
from plait.eventstore.hashing import timestamp_text
from plait.projections.codec import encode, run_stream


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

    @property
    def run_id(self) -> str:
        return self.state.run_id

    async def record(self, *events: RunEvent) -> None:
        """Apply to the in-memory state (refusing a lifecycle violation), then append."""
        if not events:
            return
        async with self._lock:
            at = timestamp_text(datetime.now(UTC))
            for event in events:
                self.state.apply(event, at)
            stored = [encode(event, self._metadata) for event in events]
            positions = await asyncio.to_thread(
                self.store.append, self.stream, stored, self.version
            )
            self.version += len(events)
            self.last_position = positions[-1]
