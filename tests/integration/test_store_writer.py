"""The store's writer thread: appends are made in the order coroutines asked for them, each
caller gets its own result or error, and closing the store finishes what was asked first."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from plait.eventstore import ConcurrencyError, NewEvent, SqlEventStore, StoreUnavailable
from plait.execution.run.appends import append_now


def event(n: int) -> NewEvent:
    return NewEvent(type="Happened", data={"n": n})


def writer_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "plait-store-writer"]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqlEventStore]:
    store = SqlEventStore(f"sqlite:///{tmp_path / 'writer.db'}")
    yield store
    store.close()


async def test_appends_are_stored_in_the_order_they_were_asked_for(store: SqlEventStore) -> None:
    asked = [asyncio.create_task(append_now(store, "run-1", [event(n)], None)) for n in range(50)]
    positions = await asyncio.gather(*asked)
    assert positions == [[n + 1] for n in range(50)]
    assert [e.data["n"] for e in store.read_stream("run-1")] == list(range(50))


async def test_a_refused_append_fails_its_caller_alone(store: SqlEventStore) -> None:
    first = asyncio.create_task(append_now(store, "run-1", [event(0)], 0))
    stale = asyncio.create_task(append_now(store, "run-1", [event(1)], 0))
    after = asyncio.create_task(append_now(store, "run-1", [event(2)], 1))
    assert await first == [1]
    with pytest.raises(ConcurrencyError):
        await stale
    assert await after == [2]
    assert [e.data["n"] for e in store.read_stream("run-1")] == [0, 2]


async def test_closing_the_store_makes_the_appends_asked_for_and_ends_its_writer(
    tmp_path: Path,
) -> None:
    before = len(writer_threads())
    store = SqlEventStore(f"sqlite:///{tmp_path / 'writer.db'}")
    asked = [asyncio.create_task(append_now(store, "run-1", [event(n)], None)) for n in range(20)]
    await asyncio.sleep(0)  # every task has handed its append to the writer
    assert len(writer_threads()) == before + 1
    store.close()
    assert len(writer_threads()) == before
    assert await asyncio.gather(*asked) == [[n + 1] for n in range(20)]
    with pytest.raises(StoreUnavailable, match="closed"):
        await append_now(store, "run-1", [event(20)], None)
    reopened = SqlEventStore(f"sqlite:///{tmp_path / 'writer.db'}")
    try:
        assert [e.data["n"] for e in reopened.read_stream("run-1")] == list(range(20))
    finally:
        reopened.close()


def test_one_writer_serves_appends_from_several_event_loops(store: SqlEventStore) -> None:
    def loop_appending(stream: str) -> list[list[int]]:
        async def appends() -> list[list[int]]:
            return [await append_now(store, stream, [event(n)], n) for n in range(10)]

        return asyncio.run(appends())

    results: dict[str, list[list[int]]] = {}
    threads = [
        threading.Thread(target=lambda s=s: results.__setitem__(s, loop_appending(s)))
        for s in ("run-a", "run-b")
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    positions = sorted(p for rs in results.values() for r in rs for p in r)
    assert positions == list(range(1, 21))
    for stream in ("run-a", "run-b"):
        assert [e.data["n"] for e in store.read_stream(stream)] == list(range(10))
