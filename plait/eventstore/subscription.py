"""Live subscriptions: catch up from the store, then follow new events as they commit.

One LiveFeed per store and event loop does the database reads for every subscriber: each new
batch of events is read once and fanned out, however many subscribers there are. A subscriber
first reads the history it missed on its own, then joins the feed; positions dedupe the seam.
A subscriber that falls too far behind is dropped from the feed and catches up from the store
again, so a slow consumer never holds memory for everyone else.

New events: a writer in this process hands the events it stored to the feed directly (the
notifier, in commit order), so they reach subscribers without a read; the feed reads from the
store only for what it was not handed: writers in other processes (LISTEN/NOTIFY on
PostgreSQL wakes it, else a poll), PostgreSQL's own appends, or a hand-off that does not
follow on from what the feed has passed on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING

from plait.eventstore.records import StoredEvent

if TYPE_CHECKING:
    from plait.eventstore.interface import EventStore

log = logging.getLogger(__name__)

PAGE_SIZE = 1000
MAX_QUEUED = 10_000
POLL_SECONDS = {"sqlite": 0.25, "postgresql": 2.0}
TICK_SECONDS = 1.0

_feeds: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[int, LiveFeed]] = (
    weakref.WeakKeyDictionary()
)


def feed_for(store: EventStore) -> LiveFeed:
    loop = asyncio.get_running_loop()
    per_loop = _feeds.setdefault(loop, {})
    feed = per_loop.get(id(store))
    if feed is None or feed.store is not store:
        feed = per_loop[id(store)] = LiveFeed(store)
    return feed


async def read_range(store: EventStore, after: int, until: int) -> AsyncIterator[StoredEvent]:
    """The stored events after `after` up to `until`, a page at a time, read off the loop:
    how a subscriber catches up before it joins a live feed."""
    while after < until:
        page = await asyncio.to_thread(store.read_all, after, min(PAGE_SIZE, until - after))
        if not page:
            return
        for event in page:
            if event.position > until:
                return
            yield event
            after = event.position


class _Lagged:
    """Queued in place of events a subscriber was too slow to take."""


_LAGGED = _Lagged()
# A subscriber's queue: events, the lagged marker, or None for a tick.
Queue = asyncio.Queue[StoredEvent | _Lagged | None]


class LiveFeed:
    def __init__(self, store: EventStore) -> None:
        self.store = store
        self.head = 0
        self.reads = 0  # database reads done for live delivery (the fan-out benchmark counts them)
        self._queues: set[Queue] = set()
        self._ticking: dict[Queue, float] = {}  # queue -> the tick interval it asked for
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self._wake = asyncio.Event()
        self._poll = TICK_SECONDS
        self._next_poll = 0.0

    @property
    def subscriber_count(self) -> int:
        return len(self._queues)

    async def subscribe(self, after_position: int = 0) -> AsyncIterator[StoredEvent]:
        async for item in self.subscribe_ticking(after_position, None):
            if item is not None:
                yield item

    async def subscribe_ticking(
        self, after_position: int, tick: float | None
    ) -> AsyncIterator[StoredEvent | None]:
        """Like subscribe, but also yields None about every `tick` seconds (the shortest
        tick any subscriber asked for), so a consumer can send heartbeats or notice a
        shutdown without cancelling the iterator (cancelling an async generator's pending
        step would close it). The feed sends the ticks to every such queue at once: no
        timer per subscriber per event."""
        queue: Queue = asyncio.Queue()
        last = after_position
        try:
            while True:
                head = await self._join(queue, tick)
                async for event in read_range(self.store, last, head):
                    last = event.position
                    yield event
                while True:
                    item = await queue.get()
                    if item is None:
                        yield None
                        continue
                    if isinstance(item, _Lagged):
                        break  # dropped from the feed: catch up from the store again
                    if item.position > last:
                        last = item.position
                        yield item
        finally:
            self._leave(queue)

    async def _join(self, queue: Queue, tick: float | None) -> int:
        self._queues.add(queue)
        if tick is not None:
            self._ticking[queue] = tick
        if self._task is None or self._task.done():
            self._ready.clear()
            self._task = asyncio.create_task(self._run(), name="plait-live-feed")
        await self._ready.wait()
        return self.head

    def _leave(self, queue: Queue) -> None:
        self._queues.discard(queue)
        self._ticking.pop(queue, None)
        if not self._queues and self._task is not None:
            self._task.cancel()
            self._task = None

    async def _run(self) -> None:
        notifier = self.store.notifier
        notifier.register(self._committed)
        listener = (
            asyncio.create_task(self._listen()) if self.store.dialect == "postgresql" else None
        )
        self._poll = POLL_SECONDS.get(self.store.dialect, 1.0)
        loop = asyncio.get_running_loop()
        try:
            self.head = await asyncio.to_thread(self.store.last_position)
            self._ready.set()
            self._next_poll = next_tick = loop.time()
            while not notifier.closed:
                woken = self._wake.is_set()
                self._wake.clear()
                if woken or loop.time() >= self._next_poll:
                    await self._deliver_new()
                    self._next_poll = loop.time() + self._poll
                if loop.time() >= next_tick:
                    for queue in self._ticking:
                        queue.put_nowait(None)
                    next_tick = loop.time() + min(self._ticking.values(), default=TICK_SECONDS)
                wait = min(self._next_poll, next_tick) - loop.time()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(max(0.0, wait)):
                        await self._wake.wait()
        finally:
            notifier.unregister(self._committed)
            if listener is not None:
                listener.cancel()

    def _committed(self, position: int, events: Sequence[StoredEvent]) -> None:
        """On this loop, from a writer: the events it stored, passed on as they are if they
        follow on from the head; anything else is read from the store."""
        if not self._ready.is_set():
            return  # the feed starts from the store's head, which includes these
        if events and events[0].position == self.head + 1:
            self._fan_out(events)
            # In step with the store as of now: a gap (another process's append) shows up
            # in the next hand-off, and the poll looks again once this writer goes quiet.
            self._next_poll = asyncio.get_running_loop().time() + self._poll
        elif position > self.head or self.store.notifier.closed:
            self._wake.set()

    async def _deliver_new(self) -> None:
        while True:
            try:
                page = await asyncio.to_thread(self.store.read_all, self.head, PAGE_SIZE)
            except Exception as exc:  # the store is down: keep subscribers, retry on next wake
                log.warning("live feed could not read new events: %s", exc)
                return
            self.reads += 1
            # Events handed over while the read was under way are passed on already.
            self._fan_out([event for event in page if event.position > self.head])
            if len(page) < PAGE_SIZE:
                return

    def _fan_out(self, events: Sequence[StoredEvent]) -> None:
        if not events:
            return
        for queue in list(self._queues):
            if queue.qsize() + len(events) > MAX_QUEUED:
                self._drop(queue)
                continue
            for event in events:
                queue.put_nowait(event)
        self.head = events[-1].position

    def _drop(self, queue: Queue) -> None:
        self._queues.discard(queue)
        while not queue.empty():
            queue.get_nowait()
        queue.put_nowait(_LAGGED)

    async def _listen(self) -> None:
        """PostgreSQL LISTEN: wakes the feed for appends made by other processes."""
        import psycopg

        conninfo = self.store.url.set(drivername="postgresql").render_as_string(hide_password=False)
        try:
            async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
                await conn.execute("LISTEN plait_events")
                async for _ in conn.notifies():
                    self._wake.set()
        except (OSError, psycopg.Error) as exc:
            log.info("LISTEN unavailable, polling instead: %s", exc)
