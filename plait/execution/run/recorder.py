"""Records a run's events: validated against the run's lifecycles, appended, then applied.

The in-memory state follows the store and never runs ahead of it: events are first checked
on a trial copy of the state (a lifecycle violation is refused before anything is written;
plait.domain.run.trial copies only what the events touch), then appended, and only once
the store has them applied to the state everything else reads. An
append the store refuses leaves the state as it was, so whatever concludes a run (RunEnded,
the CLI's exit status, the summary) is what was stored.

The run stream is the consistency boundary and one driver owns it: the recorder appends with
the version it last wrote (and the driver's fence, appends.py). Another writer shows up as a
ConcurrencyError. Requests from processes that do not drive the run (StopRequested) are the
one kind of event another writer may add: the recorder catches up with them (`catch_up`),
applies them, tells `on_command`, and appends again. Anything else another writer added means
this process no longer drives the run: `Deposed`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from plait.domain.events import BatchLanded, RunCreated, RunEvent, StopRequested
from plait.domain.run import RunState
from plait.domain.run.trial import trial
from plait.domain.statuses import RunStatus
from plait.eventstore import (
    ChainHead,
    ConcurrencyError,
    EventStore,
    Fence,
    FencedOff,
    NewEvent,
    StoredEvent,
    StoreError,
    StoreUnavailable,
)
from plait.eventstore.codec import decode
from plait.eventstore.hashing import timestamp_text
from plait.eventstore.streams import run_stream
from plait.execution.run.appends import append_now, caused_by, encoded, end_run, metadata_of

log = logging.getLogger(__name__)

# The events a process that does not drive a run may append to its stream.
COMMANDS = (StopRequested,)
_CATCH_UPS = 5  # how many commands in a row one append may have to let in first


class Deposed(StoreError):
    """The store refused the driver's append: another process drives the run now."""


class RunRecorder:
    def __init__(self, store: EventStore, state: RunState, version: int, actor: str) -> None:
        self.store = store
        self.state = state
        self.version = version
        self.stream = run_stream(state.run_id)
        self.metadata = metadata_of(actor, state.run_id)
        self._lock = asyncio.Lock()
        self.last_position = 0
        self.plan: dict[str, Any] = {}  # the plan as RunCreated recorded it
        self.outage_tolerance = 60.0
        # The driver's lease: every append carries it, and the store refuses them once
        # another process took the lease over. None: this process does not drive the run.
        self.fence: Fence | None = None
        # A driver's: called with each command another process appended (a stop request).
        self.on_command: Callable[[RunEvent], None] | None = None
        self.deposed = False
        self.last_head: ChainHead | None = None  # the chain's head as last anchored
        self.last_event_id: str | None = None

    @classmethod
    def from_history(
        cls, store: EventStore, events: Sequence[StoredEvent], actor: str
    ) -> RunRecorder:
        """A recorder whose state is the run's stored history (`plan` stays empty without
        a RunCreated)."""
        state = RunState()
        plan: dict[str, Any] = {}
        for stored in events:
            event = decode(stored)
            if isinstance(event, RunCreated):
                plan = event.plan
            state.apply(event, stored.recorded_text)
        recorder = cls(store, state, events[-1].stream_version, actor)
        recorder.last_position = events[-1].position
        recorder.last_event_id = str(events[-1].event_id)
        recorder.plan = plan
        return recorder

    @property
    def run_id(self) -> str:
        return self.state.run_id

    @property
    def driving(self) -> bool:
        return self.fence is not None or self.on_command is not None

    async def record(self, *events: RunEvent) -> None:
        """Check `events` against the state, append them, then apply them to the state.

        While the database is unreachable the run pauses here and retries, with the same
        event ids (so a retry after a lost acknowledgement appends nothing twice), for up to
        `outage_tolerance` seconds; then StoreUnavailable is raised and the run ends, to be
        resumed once the database is back.
        """
        if not events:
            return
        async with self._lock:
            if self.deposed:
                raise Deposed(f"run {self.run_id}: this process no longer drives it")
            for _ in range(_CATCH_UPS):
                at = timestamp_text(datetime.now(UTC))
                self._check(events, at)  # refused here, before anything is written
                stored = encoded(events, self.metadata)
                try:
                    positions = await self._append(stored)
                except ConcurrencyError:
                    await self._catch_up()
                    continue
                except FencedOff as exc:
                    self.deposed = True
                    raise Deposed(f"run {self.run_id}: {exc}") from exc
                for event in events:
                    self.state.apply(event, at)
                self.version += len(events)
                self.last_position = positions[-1]
                self.last_event_id = str(stored[-1].event_id)
                if any(isinstance(event, BatchLanded) for event in events):
                    await self._anchor()
                return
            raise ConcurrencyError(self.stream, self.version)

    async def end_run(self, project_id: str, outcome: RunStatus) -> None:
        """RunEnded on the project stream, caused by the last event stored, fenced."""
        metadata = caused_by(self.metadata, self.last_event_id)
        await end_run(
            self.store, project_id, self.run_id, outcome, metadata=metadata, fence=self.fence
        )

    async def catch_up(self) -> None:
        """Apply what others appended to the run stream since this recorder's version."""
        async with self._lock:
            await self._catch_up()

    def _check(self, events: tuple[RunEvent, ...], at: str) -> None:
        checked = trial(self.state)  # copies only what the events touch (domain/run/trial.py)
        for event in events:
            checked.apply(event, at)

    async def _catch_up(self) -> None:
        newer = await asyncio.to_thread(self.store.read_stream, self.stream, self.version + 1)
        for stored in newer:
            event = decode(stored)
            if self.driving and not isinstance(event, COMMANDS):
                self.deposed = True
                raise Deposed(
                    f"run {self.run_id}: another process appended {stored.type} to its stream"
                )
            assert isinstance(event, RunEvent)
            self.state.apply(event, stored.recorded_text)
            self.version = stored.stream_version
            self.last_position = stored.position
            if self.driving and self.on_command is not None:
                self.on_command(event)

    async def _anchor(self) -> None:
        """Anchor the audit chain at every landing (plait.eventstore.anchor)."""
        try:
            self.last_head = await asyncio.to_thread(self.store.record_head)
        except StoreError as exc:  # the landing is stored; the anchor waits
            log.warning("run %s: could not anchor the chain: %s", self.run_id, exc)

    async def _append(self, stored: list[NewEvent]) -> list[int]:
        deadline = time.monotonic() + self.outage_tolerance
        delay = 0.1
        while True:
            try:
                return await append_now(self.store, self.stream, stored, self.version, self.fence)
            except StoreUnavailable as exc:
                if time.monotonic() + delay > deadline:
                    raise
                log.warning("run %s paused: %s; retrying in %.1f s", self.run_id, exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
