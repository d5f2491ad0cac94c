"""Run leases: taken once, on the database's clock, and fencing every append of a deposed
driver in the append's own transaction. On SQLite and PostgreSQL alike."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import text

from plait.eventstore import Fence, FencedOff, NewEvent, SqlEventStore
from plait.eventstore.leases import LeaseStore


def event(n: int = 0) -> NewEvent:
    return NewEvent(type="Happened", data={"n": n})


def run_id() -> str:
    return f"r{uuid.uuid4().hex[:10]}"


def test_each_acquisition_gets_a_higher_epoch_and_a_renewal_keeps_it(
    store: SqlEventStore,
) -> None:
    first, second = LeaseStore(store), LeaseStore(store)
    run = run_id()
    fence = first.acquire(run)
    assert fence is not None
    assert fence.epoch == 1
    assert first.acquire(run) == fence  # renewing a live lease is not a new acquisition
    assert first.renew(run)
    assert second.acquire(run) is None  # held live by someone else
    first.release(run)
    taken = second.acquire(run)
    assert taken is not None
    assert taken.epoch == 2
    second.release(run)
    again = first.acquire(run)
    assert again is not None
    assert again.epoch == 3


def test_a_deposed_driver_cannot_append_once_another_took_its_lease(
    store: SqlEventStore,
) -> None:
    driver, taker = LeaseStore(store), LeaseStore(store)
    run = run_id()
    stream = f"run-{run}"
    old = driver.acquire(run)
    assert old is not None
    store.append(stream, [event(1)], expected_version=0, fence=old)
    driver.expire(run)  # as if the driver were cut off for longer than the TTL
    new = taker.acquire(run)
    assert new is not None
    assert new.epoch == old.epoch + 1
    with pytest.raises(FencedOff) as refused:
        store.append(stream, [event(2)], expected_version=None, fence=old)
    assert "taken over" in str(refused.value)
    assert refused.value.epoch == old.epoch
    assert not driver.renew(run)  # and it cannot renew its way back in
    store.append(stream, [event(3)], expected_version=1, fence=new)
    assert [e.data["n"] for e in store.read_stream(stream)] == [1, 3]


def test_an_append_fenced_by_an_expired_lease_is_refused_even_before_a_takeover(
    store: SqlEventStore,
) -> None:
    leases = LeaseStore(store)
    run = run_id()
    fence = leases.acquire(run)
    assert fence is not None
    leases.expire(run)
    with pytest.raises(FencedOff, match="expired by the database clock"):
        store.append(f"run-{run}", [event()], expected_version=0, fence=fence)
    assert store.read_stream(f"run-{run}") == []
    # Nobody took it meanwhile: the holder may renew and go on with the same epoch.
    assert leases.renew(run)
    store.append(f"run-{run}", [event()], expected_version=0, fence=fence)


def test_an_append_fenced_for_a_run_without_a_lease_is_refused(store: SqlEventStore) -> None:
    with pytest.raises(FencedOff, match="no lease"):
        store.append("run-nobody", [event()], expected_version=0, fence=Fence("nobody", 1))


def test_a_live_lease_holds_whatever_the_callers_clock_says(
    store: SqlEventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = run_id()
    assert LeaseStore(store).acquire(run) is not None
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + 3600.0)  # a host an hour ahead
    assert LeaseStore(store).acquire(run) is None


def test_a_lease_expires_by_the_database_clock(store: SqlEventStore) -> None:
    run = run_id()
    holder = LeaseStore(store)
    assert holder.acquire(run, ttl=0.0) is not None  # expired as soon as it is written
    assert holder.holder(run) is None
    taken = LeaseStore(store).acquire(run)
    assert taken is not None
    assert taken.epoch == 2


def test_racing_acquisitions_have_exactly_one_winner(store: SqlEventStore) -> None:
    run = run_id()
    contenders = [LeaseStore(store) for _ in range(6)]
    start = threading.Barrier(len(contenders))
    results: list[object] = []

    def take(leases: LeaseStore) -> None:
        start.wait(timeout=10)
        results.append(leases.acquire(run))

    threads = [threading.Thread(target=take, args=(c,)) for c in contenders]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    winners = [r for r in results if r is not None]
    assert len(results) == len(contenders)
    assert len(winners) == 1


@pytest.mark.postgres
def test_a_takeover_waits_for_a_fenced_append_in_flight_and_fences_every_later_one(
    pg_schema_url: str,
) -> None:
    import psycopg

    from plait.eventstore.hashing import timestamp_text

    store = SqlEventStore(pg_schema_url)
    try:
        driver, taker = LeaseStore(store), LeaseStore(store)
        old = driver.acquire("r1")
        assert old is not None
        moment = datetime.now(UTC)
        with psycopg.connect(pg_schema_url.replace("+psycopg", "")) as in_flight:
            # The driver's append, checked against its fence and not yet committed.
            in_flight.execute(
                "SELECT * FROM plait_append_fenced(%s, NULL, %s::text[], %s::text[], "
                "%s::int[], %s::text[], %s::text[], %s, %s, %s, %s)",
                [
                    "run-r1",
                    [str(uuid.uuid4())],
                    ["Happened"],
                    [1],
                    ["{}"],
                    ["{}"],
                    moment,
                    timestamp_text(moment),
                    "r1",
                    old.epoch,
                ],
            ).fetchall()
            taken: list[object] = []

            def take_over() -> None:
                taker.expire("r1")
                taken.append(taker.acquire("r1"))

            thread = threading.Thread(target=take_over)
            thread.start()
            assert _a_backend_waits_on_a_lock(store), "the takeover did not wait for the append"
            assert taken == []
            in_flight.commit()
        thread.join(timeout=30)
        assert len(taken) == 1
        new = taken[0]
        assert isinstance(new, Fence)
        assert new.epoch == old.epoch + 1
        assert len(store.read_stream("run-r1")) == 1  # the append that was in flight stands
        with pytest.raises(FencedOff):
            store.append("run-r1", [event()], expected_version=None, fence=old)
    finally:
        store.close()


def _a_backend_waits_on_a_lock(store: SqlEventStore, within: float = 20.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        with store.connect() as conn:
            waiting = conn.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                    "AND query LIKE '%plait_run_leases%'"
                )
            ).scalar_one()
        if waiting:
            return True
        time.sleep(0.05)  # polling a condition, with a deadline
    return False
