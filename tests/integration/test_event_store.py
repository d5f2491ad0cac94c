"""The event store's guarantees, run against SQLite and PostgreSQL alike."""

from __future__ import annotations

import asyncio
import threading
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import inspect, text

from plait.eventstore import (
    ConcurrencyError,
    DuplicateEventError,
    NewEvent,
    SqlEventStore,
    StoredEvent,
    hashing,
    migrate,
)
from plait.eventstore.hashing import timestamp_text


def event(kind: str = "Happened", **data: object) -> NewEvent:
    return NewEvent(type=kind, data=data, metadata={"actor": "test"})


def stream() -> str:
    return f"run-{uuid.uuid4().hex[:10]}"


def test_appended_events_come_back_with_their_envelope(store: SqlEventStore) -> None:
    s = stream()
    new = event("TaskStarted", task_id="a", attempt=1)
    [position] = store.append(s, [new], expected_version=0)
    [stored] = store.read_stream(s)
    assert stored.position == position
    assert (stored.stream_id, stored.stream_version) == (s, 1)
    assert stored.event_id == str(new.event_id)
    assert stored.type == "TaskStarted"
    assert stored.schema_version == 1
    assert stored.data == {"task_id": "a", "attempt": 1}
    assert stored.metadata == {"actor": "test"}
    assert stored.recorded_at.tzinfo is not None
    assert stored.recorded_text == timestamp_text(stored.recorded_at)
    assert len(stored.hash) == 64


def test_several_events_in_one_append_get_consecutive_positions(store: SqlEventStore) -> None:
    s = stream()
    positions = store.append(s, [event(n=i) for i in range(5)], expected_version=0)
    assert positions == list(range(positions[0], positions[0] + 5))
    assert [e.stream_version for e in store.read_stream(s)] == [1, 2, 3, 4, 5]


def test_a_wrong_expected_version_is_refused_and_appends_nothing(store: SqlEventStore) -> None:
    s = stream()
    store.append(s, [event()], expected_version=0)
    with pytest.raises(ConcurrencyError) as refused:
        store.append(s, [event(), event()], expected_version=0)
    assert refused.value.actual == 1
    with pytest.raises(ConcurrencyError):
        store.append(s, [event()], expected_version=5)
    assert store.stream_version(s) == 1


def test_no_expected_version_appends_at_the_end(store: SqlEventStore) -> None:
    s = stream()
    store.append(s, [event()], expected_version=None)
    store.append(s, [event()], expected_version=None)
    assert store.stream_version(s) == 2


def test_a_retried_append_with_the_same_event_ids_appends_nothing_twice(
    store: SqlEventStore,
) -> None:
    s = stream()
    batch = [event(n=1), event(n=2)]
    first = store.append(s, batch, expected_version=0)
    retried = store.append(s, batch, expected_version=0)
    assert retried == first
    assert len(store.read_stream(s)) == 2


def test_a_retried_append_without_an_expected_version_appends_nothing_twice(
    store: SqlEventStore,
) -> None:
    s = stream()
    batch = [event(n=1), event(n=2)]
    first = store.append(s, batch, expected_version=None)
    assert store.append(s, batch, expected_version=None) == first
    assert store.stream_version(s) == 2


def test_an_append_that_repeats_an_event_id_within_itself_is_refused(
    store: SqlEventStore,
) -> None:
    s = stream()
    twice = event()
    with pytest.raises(ValueError, match="distinct"):
        store.append(s, [twice, twice], expected_version=0)
    assert store.stream_version(s) == 0


def test_event_types_and_schema_versions_the_store_cannot_keep_are_refused_up_front(
    store: SqlEventStore,
) -> None:
    s = stream()
    for bad in ("", "x" * 101, "nul\x00inside"):
        with pytest.raises(ValueError, match="event type"):
            store.append(s, [NewEvent(type=bad, data={})], expected_version=0)
    for version in (0, 2**31):
        with pytest.raises(ValueError, match="schema_version"):
            store.append(s, [NewEvent(type="T", data={}, schema_version=version)], None)
    assert store.stream_version(s) == 0


def test_an_event_id_stored_in_another_stream_is_refused(store: SqlEventStore) -> None:
    stored = event()
    store.append(stream(), [stored], expected_version=0)
    elsewhere = stream()
    with pytest.raises(DuplicateEventError):
        store.append(elsewhere, [stored], expected_version=0)
    assert store.stream_version(elsewhere) == 0


def test_the_stored_hash_chain_is_the_one_verify_recomputes(store: SqlEventStore) -> None:
    # On PostgreSQL the chain is computed by plait_append; verify() recomputes it in Python.
    varied = [
        NewEvent(type="Tëxt", data={"text": 'naïve \u2603 "quoted" \\ back'}, schema_version=3),
        NewEvent(type="Empty", data={}, metadata={}),
        NewEvent(type="Nested", data={"a": [1, {"b": None}], "z": 1.5}, metadata={"actor": "é"}),
    ]
    s = stream()
    store.append(s, varied, expected_version=0)
    store.append(s, [event(n=i) for i in range(3)], expected_version=3)
    report = store.verify()
    assert report.ok, report.problem
    assert [e.schema_version for e in store.read_stream(s)][:3] == [3, 1, 1]


def test_a_batch_that_repeats_only_some_stored_ids_is_refused(store: SqlEventStore) -> None:
    s = stream()
    stored = event()
    store.append(s, [stored], expected_version=0)
    with pytest.raises(DuplicateEventError):
        store.append(s, [stored, event()], expected_version=1)
    assert store.stream_version(s) == 1


def test_racing_writers_win_each_version_exactly_once(store: SqlEventStore) -> None:
    s = stream()
    writers, rounds = 6, 5
    wins: list[tuple[int, int]] = []
    losses: list[int] = []
    lock = threading.Lock()

    def race(writer: int, version: int, gate: threading.Barrier) -> None:
        gate.wait()
        try:
            store.append(s, [event(writer=writer)], expected_version=version)
            with lock:
                wins.append((version, writer))
        except ConcurrencyError:
            with lock:
                losses.append(version)

    for version in range(rounds):
        gate = threading.Barrier(writers)
        threads = [threading.Thread(target=race, args=(w, version, gate)) for w in range(writers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert sorted(v for v, _ in wins) == list(range(rounds))
    assert len(losses) == rounds * (writers - 1)
    assert [e.data["writer"] for e in store.read_stream(s)] == [w for _, w in sorted(wins)]


def test_stored_events_cannot_be_updated_or_deleted(store: SqlEventStore) -> None:
    store.append(stream(), [event()], expected_version=0)
    for statement in ("UPDATE plait_events SET data = '{}'", "DELETE FROM plait_events"):
        with store.engine.connect() as conn:
            with pytest.raises(Exception, match="append-only"):
                conn.execute(text(statement))
            conn.rollback()
    assert store.verify().ok


def test_verify_accepts_an_intact_store(store: SqlEventStore) -> None:
    for _ in range(3):
        store.append(stream(), [event(n=i) for i in range(4)], expected_version=0)
    report = store.verify()
    assert report.ok
    assert report.checked == 12


def test_writers_in_two_processes_taking_turns_keep_one_valid_chain(store_url: str) -> None:
    # Each writer chains onto whatever event is last, whoever appended it.
    first, second = SqlEventStore(store_url), SqlEventStore(store_url)
    try:
        s = stream()
        version = 0
        for writer in (first, first, second, first, second, second, first):
            writer.append(s, [event(n=version), event(n=version)], expected_version=version)
            version += 2
        report = first.verify()
        assert report.ok, report.problem
        assert report.checked == 14
    finally:
        first.close()
        second.close()


@pytest.mark.postgres
def test_postgres_timestamps_come_back_in_utc_whatever_the_servers_zone(
    pg_schema_url: str,
) -> None:
    store = SqlEventStore(pg_schema_url + "%20-cTimeZone%3DAmerica/New_York")
    try:
        store.append(stream(), [event()], expected_version=0)
        [stored] = store.read_all()
        assert stored.recorded_at.utcoffset() == timedelta(0)
        assert store.verify().ok
    finally:
        store.close()


def _tamper(store: SqlEventStore, statement: str) -> None:
    """Change rows behind the store's back, as someone with database access could."""
    with store.engine.connect() as conn:
        if store.dialect == "postgresql":
            conn.execute(text("ALTER TABLE plait_events DISABLE TRIGGER USER"))
            conn.exec_driver_sql(statement)
            conn.execute(text("ALTER TABLE plait_events ENABLE TRIGGER USER"))
        else:
            conn.execute(text("DROP TRIGGER plait_events_no_update"))
            conn.execute(text("DROP TRIGGER plait_events_no_delete"))
            conn.exec_driver_sql(statement)
        conn.commit()


def test_verify_names_the_first_event_altered_behind_the_stores_back(
    store: SqlEventStore,
) -> None:
    s = stream()
    positions = store.append(s, [event(n=i) for i in range(5)], expected_version=0)
    _tamper(store, f"UPDATE plait_events SET data = '{{\"n\":99}}' WHERE position = {positions[2]}")
    report = store.verify()
    assert not report.ok
    assert report.first_bad_position == positions[2]
    assert "altered" in (report.problem or "")


def test_verify_notices_a_deleted_event(store: SqlEventStore) -> None:
    positions = store.append(stream(), [event(n=i) for i in range(4)], expected_version=0)
    _tamper(store, f"DELETE FROM plait_events WHERE position = {positions[1]}")
    report = store.verify()
    assert not report.ok
    assert report.first_bad_position == positions[2]
    assert "missing" in (report.problem or "")


def test_verify_notices_two_events_swapped(store: SqlEventStore) -> None:
    positions = store.append(stream(), [event(n=i) for i in range(4)], expected_version=0)
    a, b = positions[1], positions[2]
    _tamper(
        store,
        "UPDATE plait_events SET data = CASE position "
        f"WHEN {a} THEN (SELECT data FROM plait_events WHERE position = {b}) "
        f"ELSE (SELECT data FROM plait_events WHERE position = {a}) END "
        f"WHERE position IN ({a}, {b})",
    )
    report = store.verify()
    assert not report.ok
    assert report.first_bad_position == a


def test_sqlite_rows_with_the_older_timestamp_spelling_still_read_and_verify(
    tmp_path: Path,
) -> None:
    store = SqlEventStore(f"sqlite:///{tmp_path / 'old.db'}")
    try:
        moment = datetime(2026, 11, 1, 12, 30, 5, 123456, tzinfo=UTC)
        fields = {
            "stream_id": "run-old",
            "stream_version": 1,
            "event_id": str(uuid.uuid4()),
            "type": "RunStarted",
            "schema_version": 1,
            "data_json": "{}",
            "metadata_json": "{}",
        }
        digest = hashing.content_digest(**fields, recorded_at=moment)  # type: ignore[arg-type]
        with store.engine.connect() as conn:
            conn.execute(
                text(
                    "INSERT INTO plait_events VALUES (1, :stream_id, :stream_version, :event_id,"
                    " :type, :schema_version, :data_json, :metadata_json, :recorded, :hash)"
                ),
                {
                    **fields,
                    "recorded": "2026-11-01 12:30:05.123456+00:00",
                    "hash": hashing.chain(hashing.GENESIS_HASH, digest),
                },
            )
            conn.commit()
        store.append("run-old", [event()], expected_version=1)
        old, new = store.read_all()
        assert old.recorded_at == moment
        assert old.recorded_text == "2026-11-01T12:30:05.123456Z"
        assert new.recorded_text == timestamp_text(new.recorded_at)
        assert store.verify().ok
    finally:
        store.close()


@pytest.mark.postgres
def test_the_leaner_append_function_downgrades_and_upgrades_cleanly(
    pg_schema_url: str,
) -> None:
    from alembic import command

    from plait.eventstore import migrate

    store = SqlEventStore(pg_schema_url)
    try:
        s = stream()
        store.append(s, [event(n=1)], expected_version=0)
        with store.engine.connect() as connection:
            config = migrate.alembic_config()
            config.attributes["connection"] = connection
            command.downgrade(config, "0004_append_plan_hint")
            connection.commit()
            store.append(s, [event(n=2)], expected_version=1)  # the 0004 function
            command.upgrade(config, "head")
            connection.commit()
            assert migrate.current_revision(connection) == migrate.HEAD
            settings = connection.execute(
                text(
                    "SELECT proconfig FROM pg_proc WHERE proname = 'plait_append' "
                    "AND pronamespace = current_schema()::regnamespace"
                )
            ).scalar_one()
        assert settings == ["enable_seqscan=off"]
        store.append(s, [event(n=3)], expected_version=2)
        assert store.verify().ok
    finally:
        store.close()


def _schema(store: SqlEventStore) -> dict[str, object]:
    """Every table's columns, indexes and constraints, and the migration recorded."""
    inspector = inspect(store.engine)
    tables = {
        name: (
            [(c["name"], str(c["type"]), c["nullable"]) for c in inspector.get_columns(name)],
            sorted(str(sorted(i.items())) for i in inspector.get_indexes(name)),
            sorted(str(sorted(u.items())) for u in inspector.get_unique_constraints(name)),
        )
        for name in sorted(inspector.get_table_names())
    }
    with store.engine.connect() as connection:
        version = connection.execute(text("SELECT version_num FROM alembic_version")).all()
    return {"tables": tables, "version": version}


def test_the_schema_upgrade_is_idempotent(store_url: str) -> None:
    """Opening a store that is already current changes nothing of its schema and keeps
    every event: the second open's upgrade is a no-op, not a second migration."""
    first = SqlEventStore(store_url)
    a = stream()
    first.append(a, [event(n=1)], expected_version=0)
    schema = _schema(first)
    first.close()
    second = SqlEventStore(store_url)
    try:
        assert _schema(second) == schema
        assert schema["version"] == [(migrate.HEAD,)]
        b = stream()
        second.append(b, [event(n=2)], expected_version=0)
        assert [e.data for e in second.read_stream(a)] == [{"n": 1}]
        assert [e.data for e in second.read_stream(b)] == [{"n": 2}]
        assert second.verify().ok
    finally:
        second.close()


async def _collect(store: SqlEventStore, after: int, count: int) -> list[StoredEvent]:
    seen: list[StoredEvent] = []
    async for stored in store.subscribe(after):
        seen.append(stored)
        if len(seen) == count:
            break
    return seen


async def test_a_subscriber_sees_every_position_once_and_in_order_while_writers_race(
    store: SqlEventStore,
) -> None:
    start = store.last_position()
    writers, per_writer = 4, 25
    total = writers * per_writer
    subscriber = asyncio.create_task(_collect(store, start, total))

    def write(writer: int) -> None:
        s = stream()
        for i in range(per_writer):
            store.append(s, [event(writer=writer, i=i)], expected_version=i)

    await asyncio.gather(*(asyncio.to_thread(write, w) for w in range(writers)))
    seen = await asyncio.wait_for(subscriber, timeout=60)
    assert [e.position for e in seen] == list(range(start + 1, start + total + 1))


async def test_a_subscription_resumes_from_any_position(store: SqlEventStore) -> None:
    positions = store.append(stream(), [event(n=i) for i in range(6)], expected_version=0)
    for resume_after in (positions[0] - 1, positions[2], positions[4]):
        expected = [p for p in positions if p > resume_after]
        seen = await asyncio.wait_for(_collect(store, resume_after, len(expected)), timeout=30)
        assert [e.position for e in seen] == expected


async def test_a_subscriber_catches_up_then_follows_live_appends(store: SqlEventStore) -> None:
    s = stream()
    store.append(s, [event(n=0)], expected_version=0)
    start = store.last_position() - 1
    subscriber = asyncio.create_task(_collect(store, start, 3))
    await asyncio.to_thread(store.append, s, [event(n=1)], 1)
    await asyncio.to_thread(store.append, s, [event(n=2)], 2)
    seen = await asyncio.wait_for(subscriber, timeout=30)
    assert [e.data["n"] for e in seen] == [0, 1, 2]


async def test_many_subscribers_share_one_database_read_per_new_batch(
    store: SqlEventStore,
) -> None:
    from plait.eventstore.subscription import feed_for

    start = store.last_position()
    subscribers = [asyncio.create_task(_collect(store, start, 2)) for _ in range(20)]
    feed = feed_for(store)
    while feed.subscriber_count < 20:
        await asyncio.sleep(0)
    reads_before = feed.reads
    await asyncio.to_thread(store.append, stream(), [event(), event()], 0)
    results = await asyncio.wait_for(asyncio.gather(*subscribers), timeout=30)
    assert all(len(r) == 2 for r in results)
    # One read fetches the batch; at most one more finds nothing new.
    assert feed.reads - reads_before <= 2


def _append_many(url: str, writer: int, count: int) -> int:
    store = SqlEventStore(url)
    try:
        s = f"proc-{writer}-{uuid.uuid4().hex[:8]}"
        for i in range(count):
            store.append(s, [event(writer=writer, i=i)], expected_version=i)
        return count
    finally:
        store.close()


def test_writers_in_separate_processes_never_see_a_locked_database(store_url: str) -> None:
    import concurrent.futures
    import multiprocessing

    SqlEventStore(store_url).close()  # schema first, so the writers race only on appends
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(4, mp_context=context) as pool:
        done = list(pool.map(_append_many, [store_url] * 4, range(4), [40] * 4))
    assert done == [40] * 4
    opened = SqlEventStore(store_url)
    try:
        assert opened.verify().ok
        assert opened.verify().checked == 160
    finally:
        opened.close()
