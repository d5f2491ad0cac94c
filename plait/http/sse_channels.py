"""One channel per filter: each event is checked and encoded once, however many streams follow.

A Channel follows the store's live feed for one filter (every event, or one project's) and
puts each wanted event's SSE frame on the queue of every stream that has joined it, so a
stream's own work per event is one queue step, as in a bare broadcaster. A stream joining
reads what it missed (from its `after` up to the channel's head) from the store itself, then
takes frames from its queue; positions dedupe the seam. A stream that falls more than
MAX_QUEUED frames behind is let go by the channel and catches up from the store again.
The channel sends every stream a tick about once a `tick` seconds (heartbeats, shutdown) and
ends when its last stream leaves.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

from plait.eventstore import StoredEvent
from plait.eventstore.interface import EventStore
from plait.eventstore.subscription import MAX_QUEUED, read_range

log = logging.getLogger(__name__)
Wanted = Callable[[StoredEvent], Awaitable[bool]]
Framer = Callable[[StoredEvent], str]


class _Lagged:
    """Queued in place of frames a stream was too slow to take."""


LAGGED = _Lagged()
# A stream's queue: (position, frame), the lagged marker, or None for a tick.
Item = tuple[int, str] | _Lagged | None


@dataclass
class Channel:
    store: EventStore
    wanted: Wanted
    framer: Framer
    tick: float
    head: int = 0  # every event up to here has been offered to the joined streams
    streams: set[asyncio.Queue[Item]] = field(default_factory=set)
    task: asyncio.Task[None] | None = None
    started: asyncio.Event = field(default_factory=asyncio.Event)

    async def follow(self, after: int) -> AsyncIterator[tuple[int, str] | None]:
        """This stream's frames after `after`, with None about every `tick` seconds."""
        last = after
        queue: asyncio.Queue[Item] = asyncio.Queue()
        try:
            while True:
                until = await self._join(queue)
                async for position, text in self._catch_up(last, until):
                    last = position
                    yield position, text
                while True:
                    item = await queue.get()
                    if item is None:
                        yield None
                    elif isinstance(item, _Lagged):
                        break  # let go: catch up from the store again
                    elif item[0] > last:
                        last = item[0]
                        yield item
        finally:
            self._leave(queue)

    async def _join(self, queue: asyncio.Queue[Item]) -> int:
        self.streams.add(queue)
        if self.task is None or self.task.done():
            self.started.clear()
            self.task = asyncio.create_task(self._run(), name="plait-sse-channel")
        task, started = self.task, asyncio.ensure_future(self.started.wait())
        try:
            await asyncio.wait({task, started}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            started.cancel()
        if not self.started.is_set():
            task.result()  # it failed (the store is down): say why
            raise RuntimeError("the event channel ended before it started")
        return self.head  # from here on, the channel puts every frame on `queue`

    def _leave(self, queue: asyncio.Queue[Item]) -> None:
        self.streams.discard(queue)
        if not self.streams and self.task is not None:
            self.task.cancel()
            self.task = None

    async def _catch_up(self, after: int, until: int) -> AsyncIterator[tuple[int, str]]:
        async for event in read_range(self.store, after, until):
            if await self.wanted(event):
                yield event.position, self.framer(event)

    async def _run(self) -> None:
        try:
            await self._relay()
        except Exception as exc:  # the store failed: every stream joins again (and is told)
            log.warning("event channel stopped: %s", exc)
            for queue in list(self.streams):
                self._let_go(queue)
            raise

    async def _relay(self) -> None:
        self.head = await asyncio.to_thread(self.store.last_position)
        self.started.set()
        async for event in self.store.subscribe_ticking(self.head, self.tick):
            if event is None:
                for queue in self.streams:
                    queue.put_nowait(None)
                continue
            if await self.wanted(event):
                item = (event.position, self.framer(event))
                for queue in list(self.streams):
                    if queue.qsize() >= MAX_QUEUED:
                        self._let_go(queue)
                    else:
                        queue.put_nowait(item)
            self.head = event.position

    def _let_go(self, queue: asyncio.Queue[Item]) -> None:
        self.streams.discard(queue)
        while not queue.empty():
            queue.get_nowait()
        queue.put_nowait(LAGGED)
