"""Leases: at most one process drives a run at a time.

A lease is a row (run id, owner, expiry). Taking one is a single conditional write, so two
processes racing for the same run cannot both win; the holder renews it while it drives the
run. A holder that dies stops renewing and its lease expires. Owners are "host:pid:nonce",
so a restarted process on the same host can tell that the holder is dead and take over at
once instead of waiting for the expiry.
"""

from __future__ import annotations

import os
import socket
import time
import uuid

from sqlalchemy import Column, Float, String, Table, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from plait.eventstore.schema import metadata
from plait.eventstore.sql_store import SqlEventStore

leases = Table(
    "plait_run_leases",
    metadata,
    Column("run_id", String(100), primary_key=True),
    Column("owner", String(300), nullable=False),
    Column("expires_at", Float, nullable=False),
)

DEFAULT_TTL = 30.0


def this_process() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def holder_is_dead(owner: str) -> bool:
    """True if `owner` is a process on this host that no longer exists."""
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    # A zombie is dead too: nobody reaped it yet.
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


class LeaseStore:
    def __init__(self, store: SqlEventStore, owner: str | None = None) -> None:
        self.store = store
        self.owner = owner or this_process()

    def acquire(self, run_id: str, ttl: float = DEFAULT_TTL) -> bool:
        """Take (or renew) the lease on `run_id`. False if a live process holds it."""
        now = time.time()
        with self.store.write_connection() as conn, conn.begin():
            row = conn.execute(
                select(leases.c.owner, leases.c.expires_at).where(leases.c.run_id == run_id)
            ).first()
            if row is None:
                try:
                    with conn.begin_nested():
                        conn.execute(
                            insert(leases).values(
                                run_id=run_id, owner=self.owner, expires_at=now + ttl
                            )
                        )
                except IntegrityError:
                    return False  # someone else inserted it first
                return True
            owner, expires_at = row
            if owner != self.owner and expires_at > now and not holder_is_dead(owner):
                return False
            # Conditional on what we read: a concurrent taker changes the row and we lose.
            taken = conn.execute(
                update(leases)
                .where(
                    leases.c.run_id == run_id,
                    leases.c.owner == owner,
                    leases.c.expires_at == expires_at,
                )
                .values(owner=self.owner, expires_at=now + ttl)
            )
            return bool(taken.rowcount == 1)

    def release(self, run_id: str) -> None:
        with self.store.write_connection() as conn, conn.begin():
            conn.execute(
                delete(leases).where(leases.c.run_id == run_id, leases.c.owner == self.owner)
            )

    def holder(self, run_id: str) -> str | None:
        with self.store.connect() as conn:
            row = conn.execute(
                select(leases.c.owner, leases.c.expires_at).where(leases.c.run_id == run_id)
            ).first()
        if row is None or row[1] <= time.time():
            return None
        return str(row[0])
