"""Keeps projections up to date from the event store.

Each projection writes its rows and its checkpoint in the same transaction, and reads its
checkpoint inside that transaction under a lock, so an event is applied exactly once even
when two processes run projectors on one database or a projector crashes mid-batch.
A rebuild is truncate + replay.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any, Protocol

from sqlalchemy import Connection, Table, delete, select, update
from sqlalchemy.dialects import sqlite

from plait.eventstore import EventStore, StoredEvent, StoreError
from plait.projections.tables import checkpoints

log = logging.getLogger(__name__)

PAGE_SIZE = 1000


class Projection(Protocol):
    name: str
    tables: tuple[Table, ...]

    def apply(self, connection: Connection, events: Sequence[StoredEvent]) -> None:
        """Apply a page of events, in position order, inside the caller's transaction."""
        ...


class Projector:
    def __init__(self, store: EventStore, projections: Sequence[Projection]) -> None:
        self.store = store
        self.projections = list(projections)
        self._position = 0
        self._advanced = asyncio.Condition()

    @property
    def position(self) -> int:
        """Every projection has applied every event up to here."""
        return self._position

    def checkpoint(self, name: str) -> int:
        with self.store.connect() as conn:
            value = conn.execute(
                select(checkpoints.c.position).where(checkpoints.c.name == name)
            ).scalar_one_or_none()
        return int(value or 0)

    def catch_up(self) -> int:
        """Apply everything stored so far. Returns the position reached."""
        after = min(self.checkpoint(p.name) for p in self.projections)
        while page := self.store.read_all(after, PAGE_SIZE):
            self.apply(page)
            after = page[-1].position
        self._position = max(self._position, after)
        return after

    def settle(self) -> None:
        """Catch up once more before the process ends, so the next reader finds the read
        models current; an unreachable store is logged, not raised (readers catch up)."""
        try:
            self.catch_up()
        except StoreError as exc:
            log.warning("could not bring the read models up to date: %s", exc)

    def apply(self, events: Sequence[StoredEvent]) -> None:
        """Apply a page to every projection in one transaction: each projection's rows and
        its checkpoint commit together (one write per page, not one per projection)."""
        if not events:
            return
        with self.store.write_connection() as conn, conn.begin():
            for projection in self.projections:
                self._apply_one(conn, projection, events)
        self._position = max(self._position, events[-1].position)

    @staticmethod
    def _apply_one(conn: Connection, projection: Projection, events: Sequence[StoredEvent]) -> None:
        done = _locked_checkpoint(conn, projection.name)
        fresh = [e for e in events if e.position > done]
        if not fresh:
            return
        projection.apply(conn, fresh)
        conn.execute(
            update(checkpoints)
            .where(checkpoints.c.name == projection.name)
            .values(position=fresh[-1].position)
        )

    def rebuild(self) -> int:
        """Truncate every projection and replay the whole history into it."""
        for projection in self.projections:
            with self.store.write_connection() as conn, conn.begin():
                for table in projection.tables:
                    conn.execute(delete(table))
                conn.execute(delete(checkpoints).where(checkpoints.c.name == projection.name))
        self._position = 0
        return self.catch_up()

    async def follow(self) -> None:
        """Apply new events as they are stored, until cancelled.

        Events that arrive while a page is being applied are applied together next, so a
        burst of output costs one transaction per page, not one per event.
        """
        after = await asyncio.to_thread(self.catch_up)
        await self._notify()
        queue: asyncio.Queue[StoredEvent] = asyncio.Queue()

        async def pump() -> None:
            async for event in self.store.subscribe(after):
                queue.put_nowait(event)

        pump_task = asyncio.create_task(pump(), name="plait-projector-pump")
        getter: asyncio.Future[StoredEvent] | None = None
        try:
            while True:
                getter = asyncio.ensure_future(queue.get())
                await asyncio.wait({getter, pump_task}, return_when=asyncio.FIRST_COMPLETED)
                if not getter.done():
                    getter.cancel()
                    pump_task.result()  # the subscription ended: raise what ended it
                    return
                page = [getter.result()]
                while len(page) < PAGE_SIZE and not queue.empty():
                    page.append(queue.get_nowait())
                await asyncio.to_thread(self.apply, page)
                await self._notify()
        finally:
            pump_task.cancel()
            if getter is not None:
                getter.cancel()  # else a cancelled follow leaves it pending for ever

    async def wait_for(self, position: int) -> None:
        """Return once every projection has applied `position`."""
        async with self._advanced:
            await self._advanced.wait_for(lambda: self._position >= position)

    async def _notify(self) -> None:
        async with self._advanced:
            self._advanced.notify_all()


def _locked_checkpoint(conn: Connection, name: str) -> int:
    """The projection's checkpoint, locked for this transaction. Several processes project
    into one database (several servers, a CLI beside a server): the row is created with
    "do nothing on conflict", so two first writers do not fail each other."""
    query = select(checkpoints.c.position).where(checkpoints.c.name == name)
    value = conn.execute(query.with_for_update()).scalar_one_or_none()
    if value is None:
        conn.execute(_insert_if_absent(conn, name))
        value = conn.execute(query.with_for_update()).scalar_one()
    return int(value)


def _insert_if_absent(conn: Connection, name: str) -> Any:
    row = {"name": name, "position": 0}
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects import postgresql  # a SQLite store never pays its import

        return postgresql.insert(checkpoints).values(**row).on_conflict_do_nothing()
    return sqlite.insert(checkpoints).values(**row).on_conflict_do_nothing()
