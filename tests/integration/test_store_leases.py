"""Run leases: taken once, on the database's clock, and fencing every append of a deposed
driver in the append's own transaction. On SQLite and PostgreSQL alike."""

from __future__ import annotations

import threading
import time
import uuid

import pytest

from plait.eventstore import FencedOff, NewEvent, SqlEventStore
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
    from plait.eventstore import Fence

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
