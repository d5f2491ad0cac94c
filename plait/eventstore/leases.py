"""Leases: at most one process drives a run at a time, fenced by an epoch.

A lease is a row (run id, owner, epoch, expiry). Every time is the DATABASE's clock
(PostgreSQL's clock_timestamp(), SQLite's julianday('now')), never the caller's, so two hosts
with skewed clocks agree on who holds what. Taking a lease is one conditional write in one
transaction, so two processes racing for a run cannot both win. Each acquisition increments
the epoch; the holder's appends carry Fence(run_id, epoch), and the store refuses them in the
append's own transaction once the epoch is stale or the lease expired (FencedOff): a deposed
driver cannot write at all. A released lease keeps its row (expired) so the epoch never goes
back. Owner ids (owner.py) let a process on the same kernel and PID namespace tell that a
holder died and take over at once; anyone else waits for the expiry.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from sqlalchemy import BigInteger, Column, Connection, Float, String, Table, insert, text, update
from sqlalchemy.exc import IntegrityError

from plait.eventstore.ddl_0006 import PG_NOW, SQLITE_NOW
from plait.eventstore.interface import EventStore
from plait.eventstore.owner import Owner, is_dead, this_process
from plait.eventstore.records import Fence
from plait.eventstore.schema import metadata

leases = Table(
    "plait_run_leases",
    metadata,
    Column("run_id", String(100), primary_key=True),
    Column("owner", String(300), nullable=False),
    Column("expires_at", Float, nullable=False),  # seconds since the epoch, database clock
    Column("epoch", BigInteger, nullable=False, server_default="0"),
)


@dataclass(frozen=True)
class LeaseTimings:
    """The lease's clock, in seconds; the one home of these settings (docs/reliability.md).

    ttl: a lease not renewed for this long expires, by the database's clock.
    renew_every: how often the holder renews it.
    takeover_every: how often a server looks for expired leases to take over; a run whose
      driver died is taken over within ttl + takeover_every (the takeover bound).
    """

    ttl: float = 30.0
    renew_every: float = 10.0
    takeover_every: float = 5.0

    def __post_init__(self) -> None:
        if not 0 < self.renew_every * 2 <= self.ttl:
            raise ValueError(
                f"lease renewal every {self.renew_every} s must be at most half the lease TTL "
                f"({self.ttl} s), so one late renewal does not lose the lease"
            )
        if self.takeover_every <= 0:
            raise ValueError(f"takeover interval must be positive: {self.takeover_every}")

    @property
    def takeover_bound(self) -> float:
        return self.ttl + self.takeover_every

    def check_outage_tolerance(self, outage_tolerance: float) -> None:
        """A driver cut off from the database must give up before its lease can expire: it
        last renewed at most renew_every before the outage began."""
        if outage_tolerance + self.renew_every >= self.ttl:
            raise ValueError(
                f"outage tolerance {outage_tolerance} s plus the renewal interval "
                f"{self.renew_every} s must be shorter than the lease TTL {self.ttl} s: a driver "
                "cut off from the database would keep running after its lease expired"
            )


DEFAULT_TIMINGS = LeaseTimings()
DEFAULT_TTL = DEFAULT_TIMINGS.ttl


class LeaseStore:
    def __init__(
        self, store: EventStore, owner: Owner | None = None, timings: LeaseTimings | None = None
    ) -> None:
        self.store = store
        self.me = owner or this_process()
        self.owner = str(self.me)
        self.timings = timings or DEFAULT_TIMINGS
        self._now = PG_NOW if store.dialect == "postgresql" else SQLITE_NOW
        self._held: dict[str, Fence] = {}
        self._lock = threading.Lock()

    def fence(self, run_id: str) -> Fence | None:
        """The fence of the lease this owner holds on `run_id` (None if it holds none)."""
        with self._lock:
            return self._held.get(run_id)

    def acquire(self, run_id: str, ttl: float | None = None) -> Fence | None:
        """Take the lease on `run_id` (a new epoch), or renew it if this owner holds it
        live. None if another live process holds it."""
        ttl = self.timings.ttl if ttl is None else ttl
        with self.store.write_connection() as conn, conn.begin():
            row = self._read(conn, run_id)
            if row is None:
                try:
                    with conn.begin_nested():
                        conn.execute(
                            insert(leases).values(
                                run_id=run_id,
                                owner=self.owner,
                                epoch=1,
                                expires_at=text(f"{self._now} + {float(ttl)}"),
                            )
                        )
                except IntegrityError:
                    return None  # someone else inserted it first
                return self._hold(Fence(run_id, 1))
            owner, epoch, live = row
            if owner == self.owner and live:
                fence = self._extend(conn, run_id, owner, epoch, ttl)
                return self._hold(fence) if fence else None
            if live and not is_dead(owner, self.me):
                return None
            # Conditional on the epoch we read: a concurrent taker changes it and we lose.
            taken = conn.execute(
                update(leases)
                .where(leases.c.run_id == run_id, leases.c.epoch == epoch)
                .values(
                    owner=self.owner,
                    epoch=epoch + 1,
                    expires_at=text(f"{self._now} + {float(ttl)}"),
                )
            )
            return self._hold(Fence(run_id, epoch + 1)) if taken.rowcount == 1 else None

    def renew(self, run_id: str) -> bool:
        """Extend the lease this owner holds, if its epoch is still the lease's. False: lost."""
        fence = self.fence(run_id)
        if fence is None:
            return False
        with self.store.write_connection() as conn, conn.begin():
            renewed = self._extend(conn, run_id, self.owner, fence.epoch, self.timings.ttl)
        if renewed is None:
            self._forget(run_id)
        return renewed is not None

    def release(self, run_id: str) -> None:
        """Let the lease lapse now. The row stays, so the next acquisition's epoch is higher."""
        self._forget(run_id)
        with self.store.write_connection() as conn, conn.begin():
            conn.execute(
                update(leases)
                .where(leases.c.run_id == run_id, leases.c.owner == self.owner)
                .values(expires_at=0.0)
            )

    def holder(self, run_id: str) -> str | None:
        """The live holder's owner id, by the database's clock; None if nobody holds it."""
        with self.store.connect() as conn:
            row = self._read(conn, run_id)
        return str(row[0]) if row is not None and row[2] else None

    def expire(self, run_id: str) -> None:
        """Expire the lease whoever holds it (for tests and operators: as if the holder were
        partitioned away for longer than the TTL)."""
        with self.store.write_connection() as conn, conn.begin():
            conn.execute(update(leases).where(leases.c.run_id == run_id).values(expires_at=0.0))

    def _read(self, conn: Connection, run_id: str) -> tuple[str, int, bool] | None:
        row = conn.execute(
            text(
                f"SELECT owner, epoch, expires_at > {self._now} FROM plait_run_leases "
                "WHERE run_id = :run_id"
            ),
            {"run_id": run_id},
        ).first()
        return None if row is None else (str(row[0]), int(row[1]), bool(row[2]))

    def _extend(
        self, conn: Connection, run_id: str, owner: str, epoch: int, ttl: float
    ) -> Fence | None:
        extended = conn.execute(
            update(leases)
            .where(leases.c.run_id == run_id, leases.c.owner == owner, leases.c.epoch == epoch)
            .values(expires_at=text(f"{self._now} + {float(ttl)}"))
        )
        return Fence(run_id, epoch) if extended.rowcount == 1 else None

    def _hold(self, fence: Fence) -> Fence:
        with self._lock:
            self._held[fence.run_id] = fence
        return fence

    def _forget(self, run_id: str) -> None:
        with self._lock:
            self._held.pop(run_id, None)
