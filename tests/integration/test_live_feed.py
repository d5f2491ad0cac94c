"""The live feed: events this process stores reach subscribers as stored, without a read; what
other writers store is still read, in order, with nothing lost or repeated."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from plait.eventstore import NewEvent, SqlEventStore, StoredEvent, subscription
from plait.eventstore.subscription import LiveFeed, feed_for


def event(**data: object) -> NewEvent:
    return NewEvent(type="Happened", data=data)


def stream() -> str:
    return f"feed-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[SqlEventStore]:
    store = SqlEventStore(f"sqlite:///{tmp_path / 'feed.db'}")
    yield store
    store.close()


@pytest.fixture
def no_poll(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fallback poll out of the way: only a hand-off or a wake makes the feed read."""
    monkeypatch.setitem(subscription.POLL_SECONDS, "sqlite", 3600.0)


async def joined(
    store: SqlEventStore, after: int, count: int
) -> tuple[asyncio.Task[list[StoredEvent]], LiveFeed]:
    async def collect() -> list[StoredEvent]:
        seen: list[StoredEvent] = []
        async for stored in store.subscribe(after):
            seen.append(stored)
            if len(seen) == count:
                break
        return seen

    task = asyncio.create_task(collect())
    feed = feed_for(store)
    while feed.subscriber_count < 1:
        await asyncio.sleep(0)
    while feed.reads < 1:  # the feed's first look at the store, as it starts
        await asyncio.sleep(0.01)
    return task, feed


@pytest.mark.usefixtures("no_poll")
async def test_events_stored_in_this_process_reach_a_subscriber_as_stored_without_a_read(
    sqlite_store: SqlEventStore,
) -> None:
    store = sqlite_store
    start = store.last_position()
    task, feed = await joined(store, start, 5)
    reads = feed.reads
    s = stream()
    await asyncio.to_thread(store.append, s, [event(n=0), event(n=1)], 0)
    for n in (2, 3, 4):
        await asyncio.to_thread(store.append, s, [event(n=n)], n)
    seen = await asyncio.wait_for(task, timeout=30)
    assert seen == store.read_all(start)  # the very tuples a read returns
    assert feed.reads == reads  # none of them read back


@pytest.mark.usefixtures("no_poll")
async def test_what_another_writer_stored_is_read_when_the_next_hand_off_skips_it(
    sqlite_store: SqlEventStore, tmp_path: Path
) -> None:
    store = sqlite_store
    other = SqlEventStore(f"sqlite:///{tmp_path / 'feed.db'}")  # as another process would
    try:
        start = store.last_position()
        task, feed = await joined(store, start, 3)
        await asyncio.to_thread(other.append, stream(), [event(by="other")], 0)
        await asyncio.to_thread(store.append, stream(), [event(by="us"), event(by="us")], 0)
        seen = await asyncio.wait_for(task, timeout=30)
    finally:
        other.close()
    assert [e.data["by"] for e in seen] == ["other", "us", "us"]
    assert [e.position for e in seen] == [start + 1, start + 2, start + 3]
    assert feed.reads > 1  # the gap was read from the store


async def test_another_writers_events_reach_a_quiet_feed_by_its_poll(
    sqlite_store: SqlEventStore, tmp_path: Path
) -> None:
    store = sqlite_store
    other = SqlEventStore(f"sqlite:///{tmp_path / 'feed.db'}")
    try:
        start = store.last_position()
        task, _ = await joined(store, start, 2)
        await asyncio.to_thread(other.append, stream(), [event(n=1), event(n=2)], 0)
        seen = await asyncio.wait_for(task, timeout=30)
    finally:
        other.close()
    assert [e.data["n"] for e in seen] == [1, 2]
