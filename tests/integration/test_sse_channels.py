"""An SSE channel on a real SQLite store: each event is filtered and encoded once for all its
streams, a stream that joins late catches up, and one that falls behind is let go and
catches up again with nothing lost or repeated."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from plait.eventstore import NewEvent, SqlEventStore, StoredEvent, StoreUnavailable
from plait.http import sse_channels
from plait.http.sse_channels import Channel


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqlEventStore]:
    opened = SqlEventStore(f"sqlite:///{tmp_path / 'sse.db'}")
    yield opened
    opened.close()


def append(store: SqlEventStore, count: int, kind: str = "Wanted") -> None:
    stream = f"s-{uuid.uuid4().hex[:12]}"
    store.append(stream, [NewEvent(type=kind, data={"i": i}) for i in range(count)], 0)


class Counted:
    """A framer that counts its calls, and a filter that wants only `Wanted` events."""

    def __init__(self) -> None:
        self.framed = 0
        self.checked = 0

    def frame(self, event: StoredEvent) -> str:
        self.framed += 1
        return f"id: {event.position}\n\n"

    async def wanted(self, event: StoredEvent) -> bool:
        self.checked += 1
        return event.type == "Wanted"


async def take(frames: AsyncIterator[tuple[int, str] | None], count: int) -> list[int]:
    seen: list[int] = []
    async for item in frames:
        if item is not None:
            seen.append(item[0])
            if len(seen) == count:
                break
    return seen


async def test_each_event_is_checked_and_encoded_once_for_every_stream(
    store: SqlEventStore,
) -> None:
    counted = Counted()
    channel = Channel(store, counted.wanted, counted.frame, tick=1.0)
    start = store.last_position()
    streams = [asyncio.create_task(take(channel.follow(start), 3)) for _ in range(20)]
    while len(channel.streams) < 20 or not channel.started.is_set():
        await asyncio.sleep(0.01)
    await asyncio.to_thread(append, store, 2, "Unwanted")
    await asyncio.to_thread(append, store, 3)
    results = await asyncio.wait_for(asyncio.gather(*streams), timeout=30)
    assert all(r == [start + 3, start + 4, start + 5] for r in results)
    assert (counted.checked, counted.framed) == (5, 3)


async def test_a_stream_that_falls_behind_catches_up_with_nothing_lost_or_repeated(
    store: SqlEventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sse_channels, "MAX_QUEUED", 3)
    counted = Counted()
    channel = Channel(store, counted.wanted, counted.frame, tick=1.0)
    let_go: list[object] = []
    original = channel._let_go

    def counted_let_go(queue: object) -> None:
        let_go.append(queue)
        original(queue)  # type: ignore[arg-type]

    monkeypatch.setattr(channel, "_let_go", counted_let_go)
    await asyncio.to_thread(append, store, 2)  # history from before the stream joins
    slow = channel.follow(0)
    first = await asyncio.wait_for(take(slow, 1), timeout=30)
    assert first == [1]
    # The stream takes nothing while ten more events arrive: the channel lets it go.
    kept: list[int] = []
    took = asyncio.Event()

    async def keep(frames: AsyncIterator[tuple[int, str] | None]) -> None:
        async for item in frames:
            if item is not None:
                kept.append(item[0])
                took.set()
                if len(kept) == 10:
                    return

    keeper = asyncio.create_task(keep(channel.follow(store.last_position())))
    for count in range(1, 11):  # each taken before the next: the keeper keeps up
        await asyncio.to_thread(append, store, 1)
        while len(kept) < count:
            took.clear()
            await asyncio.wait_for(took.wait(), timeout=30)
    await asyncio.wait_for(keeper, timeout=30)
    assert len(let_go) == 1  # the slow stream, once
    rest = await asyncio.wait_for(take(slow, 11), timeout=30)
    assert rest == list(range(2, 13))
    await slow.aclose()  # type: ignore[attr-defined]
    assert not channel.streams


async def test_a_channel_that_fails_lets_its_streams_join_again_with_nothing_lost(
    store: SqlEventStore,
) -> None:
    counted = Counted()
    failures = [StoreUnavailable("database is unavailable: disk I/O error")]

    async def flaky(event: StoredEvent) -> bool:
        if failures and event.data.get("i") == 1:  # the owner lookup of one event fails once
            raise failures.pop()
        return await counted.wanted(event)

    channel = Channel(store, flaky, counted.frame, tick=1.0)
    start = store.last_position()
    stream = asyncio.create_task(take(channel.follow(start), 3))
    while not channel.started.is_set():
        await asyncio.sleep(0.01)
    await asyncio.to_thread(append, store, 3)
    assert await asyncio.wait_for(stream, timeout=30) == [start + 1, start + 2, start + 3]
    assert not failures  # it did fail, once
