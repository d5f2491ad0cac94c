"""Event store throughput: plait against the `eventsourcing` library, side by side in one run.

    pip install -e '.[bench]' && python -m bench.store [--events 2000] [--runs 5] [--no-record]
        [--sqlite-sync FULL,NORMAL] [--pg-sync on,off]

Measures, for SQLite and PostgreSQL: appends with 1 event per transaction, with 10 events per
transaction, and reading everything back in global order (pages of 1,000), in events/s.
Both stores run on the same machine in the same process, on fresh databases (PostgreSQL: a
fresh schema each), interleaved in rounds within each measure. plait stores its full envelope
and hash chain.

Always at equal durability: both stores run at each SQLite `synchronous` level given (WAL
mode on both) and each PostgreSQL `synchronous_commit` given, and each store's setting is read
back from its own connection before the figures count. plait's default is SQLite NORMAL
(plait.eventstore.engines.SQLITE_SYNCHRONOUS): in WAL mode it can lose the last commits on a
power loss, never on a process crash (docs/reliability.md, "SQLite durability"); on
PostgreSQL, the server's default `on`. bench/store_floor.py splits each SQLite append into
the store's SQLite work and its Python.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import create_engine, text

from bench.results import append_section, spread
from plait.eventstore import NewEvent, SqlEventStore
from plait.eventstore.engines import SQLITE_SYNCHRONOUS

PG = "postgresql://postgres@127.0.0.1:5432/test"
READ_AT_LEAST = 1_000_000
PAYLOAD = {"task_id": "parser", "batch_id": 1, "attempt": 1, "text": "x" * 120}


class Contender(Protocol):
    def append(self, stream: str, count: int, version: int) -> None: ...
    def read_all(self) -> int: ...
    def setting(self) -> str: ...
    def close(self) -> None: ...


SQLITE_LEVELS = {"0": "OFF", "1": "NORMAL", "2": "FULL", "3": "EXTRA"}


class Plait:
    def __init__(self, url: str, sync: str) -> None:
        self.store = SqlEventStore(url, sqlite_synchronous=sync)

    def setting(self) -> str:
        """The durability setting as the store's own connection reports it."""
        query = (
            "PRAGMA synchronous" if self.store.dialect == "sqlite" else "SHOW synchronous_commit"
        )
        with self.store.connect() as conn:
            value = str(conn.execute(text(query)).scalar())
        return SQLITE_LEVELS.get(value, value)

    def append(self, stream: str, count: int, version: int) -> None:
        events = [NewEvent(type="TaskOutput", data=PAYLOAD) for _ in range(count)]
        self.store.append(stream, events, expected_version=version)

    def read_all(self) -> int:
        after, total = 0, 0
        while page := self.store.read_all(after, 1000):
            total += len(page)
            after = page[-1].position
        return total

    def close(self) -> None:
        self.store.close()


class EventSourcing:
    def __init__(self, backend: str, where: str, sync: str) -> None:
        import json

        from eventsourcing.persistence import StoredEvent

        self._stored_event = StoredEvent
        self._state = json.dumps(PAYLOAD).encode()
        self.backend = backend
        self.datastore: Any
        self.recorder: Any
        if backend == "sqlite":
            from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteDatastore

            self.datastore = SQLiteDatastore(where)
            pool = self.datastore.pool
            create = pool._create_connection

            def with_sync() -> Any:
                made = create()
                made._sqlite_conn.execute(f"PRAGMA synchronous = {sync}")
                return made

            pool._create_connection = with_sync
            self.recorder = SQLiteApplicationRecorder(self.datastore)
        else:
            from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore

            self.datastore = PostgresDatastore(
                "test", "127.0.0.1", 5432, "postgres", "", schema=where
            )
            self.recorder = PostgresApplicationRecorder(self.datastore)
        self.recorder.create_table()

    def append(self, stream: str, count: int, version: int) -> None:
        originator = uuid.uuid5(uuid.NAMESPACE_URL, stream)
        events = [
            self._stored_event(originator, version + i + 1, "bench:TaskOutput", self._state)
            for i in range(count)
        ]
        self.recorder.insert_events(events)

    def read_all(self) -> int:
        start, total = 1, 0
        while page := self.recorder.select_notifications(start, 1000):
            total += len(page)
            start = page[-1].id + 1
        return total

    def setting(self) -> str:
        query = "PRAGMA synchronous" if self.backend == "sqlite" else "SHOW synchronous_commit"
        with self.datastore.transaction(commit=False) as cursor:
            cursor.execute(query)
            row = cursor.fetchone()
        value = str(row[0] if isinstance(row, (tuple, list)) else next(iter(dict(row).values())))
        return SQLITE_LEVELS.get(value, value)

    def close(self) -> None:
        self.datastore.close()


@contextmanager
def pg_schema() -> Iterator[str]:
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    engine = create_engine(PG.replace("postgresql://", "postgresql+psycopg://"))
    with engine.connect() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
        conn.commit()
    try:
        yield schema
    finally:
        with engine.connect() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
            conn.commit()
        engine.dispose()


@contextmanager
def contender(name: str, backend: str, sync: str) -> Iterator[Contender]:
    """A fresh store of `name` at durability `sync` (SQLite: synchronous; PostgreSQL:
    synchronous_commit, given to both stores' connections through libpq's PGOPTIONS)."""
    made: Contender
    if backend == "sqlite":
        with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmp:
            path = Path(tmp) / "bench.db"
            made = (
                Plait(f"sqlite:///{path}", sync)
                if name == "plait"
                else EventSourcing("sqlite", str(path), sync)
            )
            try:
                yield made
            finally:
                made.close()
    else:
        before = os.environ.get("PGOPTIONS")
        os.environ["PGOPTIONS"] = f"-c synchronous_commit={sync}"
        try:
            with pg_schema() as schema:
                made = (
                    # libpq's `options` parameter overrides PGOPTIONS: both settings go here.
                    Plait(
                        f"{PG}?options=-csearch_path%3D{schema}%20-csynchronous_commit%3D{sync}",
                        sync,
                    )
                    if name == "plait"
                    else EventSourcing("postgres", schema, sync)
                )
                try:
                    yield made
                finally:
                    made.close()
        finally:
            if before is None:
                os.environ.pop("PGOPTIONS", None)
            else:
                os.environ["PGOPTIONS"] = before


ROUNDS = 20


class Timer:
    """Seconds and events per contender, summed over the rounds of one measure."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.events: dict[str, int] = {}

    def time(self, name: str, events: int, action: Callable[[], object]) -> None:
        started = time.perf_counter()
        action()
        elapsed = time.perf_counter() - started
        self.seconds[name] = self.seconds.get(name, 0.0) + elapsed
        self.events[name] = self.events.get(name, 0) + events

    def rate(self, name: str) -> float:
        return self.events[name] / self.seconds[name]


def measure(backend: str, sync: str, events: int, first: str) -> dict[str, dict[str, float]]:
    """All three measures, for both contenders on fresh stores, interleaved round by round.

    The machine is shared: a slow spell of a few seconds would land on whichever contender
    ran then if each ran its whole measure at once. Rounds alternate between the two (and
    which goes first), so a spell hits both alike.
    """
    names = ["plait", "eventsourcing"]
    with (
        contender("plait", backend, sync) as mine,
        contender("eventsourcing", backend, sync) as theirs,
    ):
        stores: dict[str, Contender] = {"plait": mine, "eventsourcing": theirs}
        for name, store in stores.items():
            if store.setting().lower() != sync.lower():
                raise SystemExit(f"{name} runs at {store.setting()}, not {sync}: not comparable")
        per_round = max(1, events // ROUNDS)
        streams = [f"s-{i}" for i in range(max(1, events // 10))]
        timers = {key: Timer() for key in ("append x1", "append x10", "read all")}

        def order(round_: int) -> list[str]:
            flip = (round_ % 2 == 1) != (first == "eventsourcing")
            return names[::-1] if flip else names

        for round_ in range(ROUNDS):
            done = round_ * per_round
            for name in order(round_):
                store = stores[name]

                def one_per_txn(store: Contender = store, done: int = done) -> None:
                    for i in range(done, done + per_round):
                        store.append(streams[i % len(streams)], 1, i // len(streams))

                timers["append x1"].time(name, per_round, one_per_txn)
        batches = max(1, per_round // 10)
        for round_ in range(ROUNDS):
            for name in order(round_):
                store = stores[name]

                def ten_per_txn(store: Contender = store, round_: int = round_) -> None:
                    for i in range(batches):
                        store.append(f"b-{round_}-{i}", 10, 0)

                timers["append x10"].time(name, 10 * batches, ten_per_txn)
        # Each pass reads the whole store; a round reads it often enough to be timed on a
        # shared machine: at least READ_AT_LEAST events per measure in all.
        stored = per_round * ROUNDS + 10 * batches * ROUNDS
        passes = max(1, -(-READ_AT_LEAST // (stored * ROUNDS)))
        for round_ in range(ROUNDS):
            for name in order(round_):
                store = stores[name]

                def read_passes(store: Contender = store) -> None:
                    for _ in range(passes):
                        assert store.read_all() == stored

                timers["read all"].time(name, stored * passes, read_passes)
        return {name: {key: timer.rate(name) for key, timer in timers.items()} for name in names}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--sqlite-sync", default="FULL,NORMAL", help="levels, both stores each")
    parser.add_argument("--pg-sync", default="on,off", help="synchronous_commit, both stores")
    parser.add_argument("--no-record", action="store_true", help="print only")
    args = parser.parse_args()
    table = [
        "| backend | durability (both) | measure | plait events/s | eventsourcing events/s "
        "| ratio, median (range) | target |",
        "|---|---|---|---|---|---|---|",
    ]
    levels = {"sqlite": args.sqlite_sync.split(","), "postgres": args.pg_sync.split(",")}
    for backend in args.backends.split(","):
        for sync in levels[backend]:
            table.extend(_rows(backend, sync, args.events, args.runs))
            print("\n".join(table[-3:]), flush=True)
    notes = [
        f"{args.events} events per append measure ({READ_AT_LEAST:,}+ read per read measure),",
        f"{args.runs} runs, median (min-max). Within a run the two contenders alternate in",
        f"{ROUNDS} rounds per measure, so a slow spell of the machine hits both. plait stores the",
        "full envelope (event id, schema version, metadata, recorded_at) and the hash chain;",
        "eventsourcing's recorders store originator id, version, topic and state. Both stores",
        "run at the durability of their row, read back from each one's connection: SQLite in",
        "WAL mode at that `synchronous` level, PostgreSQL at that `synchronous_commit`.",
        f"plait's defaults: SQLite {SQLITE_SYNCHRONOUS} (in WAL mode, NORMAL can lose the last",
        "commits on a power loss, not on a process crash), PostgreSQL on.",
    ]
    command = (
        f"python -m bench.store --events {args.events} --runs {args.runs} "
        f"--backends {args.backends} --sqlite-sync {args.sqlite_sync} --pg-sync {args.pg_sync}"
    )
    if args.no_record:
        print("\n".join([*table, "", *notes]))
    else:
        print(append_section("Event store throughput", command, table, notes))


def _rows(backend: str, sync: str, events: int, count: int) -> list[str]:
    runs: dict[str, dict[str, list[float]]] = {"plait": {}, "eventsourcing": {}}
    for run in range(count):
        first = "plait" if run % 2 == 0 else "eventsourcing"
        for name, rates in measure(backend, sync, events, first).items():
            for key, value in rates.items():
                runs[name].setdefault(key, []).append(value)
    default = SQLITE_SYNCHRONOUS if backend == "sqlite" else "on"
    shown = f"{sync}{' (plait default)' if sync.lower() == default.lower() else ''}"
    rows = []
    for key in ("append x1", "append x10", "read all"):
        mine, theirs = runs["plait"][key], runs["eventsourcing"][key]
        # Each run's ratio comes from interleaved rounds, so it is the robust figure.
        ratios = [a / b for a, b in zip(mine, theirs, strict=True)]
        ratio = statistics.median(ratios)
        target = 2.0 if key == "read all" else 1.5
        met = "met" if ratio >= target else "MISSED"
        rows.append(
            f"| {backend} | {shown} | {key} | {spread(mine)} | {spread(theirs)} | {ratio:.2f}x "
            f"({min(ratios):.2f}-{max(ratios):.2f}) | >= {target}x ({met}) |"
        )
    return rows


if __name__ == "__main__":
    main()
