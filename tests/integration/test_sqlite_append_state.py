"""The SQLite writer's kept append state (sqlite_store._Tip): each append starts from what is
really stored, whoever stored it, though it skips the query when nobody else wrote."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from plait.eventstore import ConcurrencyError, NewEvent, SqlEventStore, sqlite_store


def event(**data: object) -> NewEvent:
    return NewEvent(type="Happened", data=data)


def stream() -> str:
    return f"run-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'plait.db'}"


@pytest.fixture
def two_stores(url: str) -> Iterator[tuple[SqlEventStore, SqlEventStore]]:
    first, second = SqlEventStore(url), SqlEventStore(url)
    try:
        yield first, second
    finally:
        first.close()
        second.close()


def test_an_append_after_another_writers_appends_chains_onto_them(
    two_stores: tuple[SqlEventStore, SqlEventStore],
) -> None:
    first, second = two_stores
    shared, own = stream(), stream()
    first.append(shared, [event(n=1)], expected_version=None)
    first.append(own, [event(n=1)], expected_version=0)
    second.append(shared, [event(n=2), event(n=3)], expected_version=None)
    second.append(stream(), [event(n=1)], expected_version=0)
    # first's last commit is no longer the head, nor the shared stream's version.
    first.append(shared, [event(n=4)], expected_version=None)
    first.append(own, [event(n=2)], expected_version=1)
    assert [e.stream_version for e in first.read_stream(shared)] == [1, 2, 3, 4]
    assert [e.data["n"] for e in first.read_stream(shared)] == [1, 2, 3, 4]
    report = first.verify()
    assert report.ok, report.problem
    assert report.checked == 7


def test_an_expected_version_another_writer_moved_past_is_refused(
    two_stores: tuple[SqlEventStore, SqlEventStore],
) -> None:
    first, second = two_stores
    s = stream()
    first.append(s, [event()], expected_version=0)
    second.append(s, [event()], expected_version=1)
    with pytest.raises(ConcurrencyError):
        first.append(s, [event()], expected_version=1)
    first.append(s, [event()], expected_version=2)
    assert first.stream_version(s) == 3


def test_appends_after_a_write_on_the_stores_own_write_connection_stay_chained(
    url: str,
) -> None:
    store = SqlEventStore(url)
    try:
        s = stream()
        store.append(s, [event(n=1)], expected_version=0)
        with store.write_connection() as conn:
            conn.execute(
                text("INSERT INTO plait_projection_checkpoints (name, position) VALUES ('x', 1)")
            )
            conn.commit()
        store.append(s, [event(n=2)], expected_version=1)
        assert store.verify().ok
    finally:
        store.close()


def test_a_writer_appending_to_more_streams_than_it_keeps_gets_every_version_right(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_store, "MAX_TIP_STREAMS", 3)
    store = SqlEventStore(url)
    try:
        streams = [stream() for _ in range(5)]
        for version in range(3):
            for s in streams:
                store.append(s, [event(v=version)], expected_version=version)
        assert [store.stream_version(s) for s in streams] == [3] * 5
        assert store.verify().ok
    finally:
        store.close()


def test_a_refused_or_retried_append_leaves_the_next_one_chained(url: str) -> None:
    store = SqlEventStore(url)
    try:
        s = stream()
        first = event()
        [position] = store.append(s, [first], expected_version=0)
        assert store.append(s, [first], expected_version=0) == [position]
        with pytest.raises(ConcurrencyError):
            store.append(s, [event()], expected_version=0)
        assert store.append(s, [event()], expected_version=1) == [position + 1]
        assert store.verify().ok
    finally:
        store.close()
