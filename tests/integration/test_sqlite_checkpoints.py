"""SQLite's WAL is checkpointed by the store's own thread, never inside an append's commit."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from plait.eventstore import NewEvent, SqlEventStore
from plait.eventstore.checkpoints import (
    AUTOCHECKPOINT_PAGES,
    CHECKPOINT_EVERY_COMMITS,
    checkpoint_due,
)


def _checkpointer_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "plait-wal-checkpointer"]


def test_appends_are_checkpointed_in_the_background(tmp_path: Path) -> None:
    store = SqlEventStore(f"sqlite:///{tmp_path / 'plait.db'}")
    try:
        checkpointer = store.checkpointer
        assert checkpointer is not None
        for version in range(CHECKPOINT_EVERY_COMMITS):
            store.append("run-1", [NewEvent(type="Happened", data={})], expected_version=version)
        assert checkpointer.wait_for_checkpoint(after=0, timeout=60)
        assert checkpointer.last_result is not None
        busy, _frames, checkpointed = checkpointer.last_result
        assert busy == 0
        assert checkpointed > 0
        assert store.verify().ok
    finally:
        store.close()


def test_commits_leave_checkpoints_to_the_thread_below_the_safety_net(tmp_path: Path) -> None:
    store = SqlEventStore(f"sqlite:///{tmp_path / 'plait.db'}")
    try:
        store.append("run-1", [NewEvent(type="Happened", data={})], expected_version=0)
        with store.connect() as connection:
            pages = connection.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar()
        assert pages == AUTOCHECKPOINT_PAGES
    finally:
        store.close()


def test_closing_the_store_stops_its_checkpointer_and_keeps_every_event(tmp_path: Path) -> None:
    path = tmp_path / "plait.db"
    before = len(_checkpointer_threads())
    store = SqlEventStore(f"sqlite:///{path}")
    store.append("run-1", [NewEvent(type="Happened", data={}) for _ in range(3)], 0)
    assert len(_checkpointer_threads()) == before + 1
    store.close()
    assert len(_checkpointer_threads()) == before
    with sqlite3.connect(path) as reopened:
        assert reopened.execute("SELECT count(*) FROM plait_events").fetchone() == (3,)


@pytest.mark.postgres
def test_postgres_stores_have_no_checkpointer(pg_schema_url: str) -> None:
    store = SqlEventStore(pg_schema_url)
    try:
        assert store.checkpointer is None
    finally:
        store.close()


def test_a_steady_trickle_of_commits_is_checkpointed_by_count_and_a_quiet_second_by_time() -> None:
    # Ten commits a second never leave a quiet second: only the count brings a checkpoint.
    assert not checkpoint_due(pending=10, since_commit=0.1, every=100, idle=1.0)
    assert checkpoint_due(pending=100, since_commit=0.1, every=100, idle=1.0)
    # Once the commits stop, the WAL is checkpointed a quiet second later.
    assert checkpoint_due(pending=1, since_commit=1.0, every=100, idle=1.0)
    assert not checkpoint_due(pending=0, since_commit=5.0, every=100, idle=1.0)
