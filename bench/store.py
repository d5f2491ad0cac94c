"""Event store throughput: plait against the `eventsourcing` library, side by side in one run.

    pip install -e '.[bench]' && python -m bench.store [--events 2000] [--runs 5]

Measures, for SQLite and PostgreSQL: appends with 1 event per transaction, with 10 events per
transaction, and reading everything back in global order (pages of 1,000), in events/s.
Both stores run on the same machine in the same process, alternating, on fresh databases
(PostgreSQL: a fresh schema each). plait stores its full envelope and hash chain.
"""

from __future__ import annotations

import argparse
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

PG = "postgresql://postgres@127.0.0.1:5432/test"
READ_AT_LEAST = 100_000
PAYLOAD = {"task_id": "parser", "batch_id": 1, "attempt": 1, "text": "x" * 120}


class Contender(Protocol):
    def append(self, stream: str, count: int, version: int) -> None: ...
    def read_all(self) -> int: ...
    def close(self) -> None: ...


class Plait:
    def __init__(self, url: str) -> None:
        self.store = SqlEventStore(url)

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
    def __init__(self, backend: str, where: str) -> None:
        import json

        from eventsourcing.persistence import StoredEvent

        self._stored_event = StoredEvent
        self._state = json.dumps(PAYLOAD).encode()
        self.datastore: Any
        self.recorder: Any
        if backend == "sqlite":
            from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteDatastore

            self.datastore = SQLiteDatastore(where)
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
def contender(name: str, backend: str) -> Iterator[Contender]:
    made: Contender
    if backend == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "bench.db"
            made = (
                Plait(f"sqlite:///{path}")
                if name == "plait"
                else EventSourcing("sqlite", str(path))
            )
            try:
                yield made
            finally:
                made.close()
    else:
        with pg_schema() as schema:
            made = (
                Plait(f"{PG}?options=-csearch_path%3D{schema}")
                if name == "plait"
                else EventSourcing("postgres", schema)
            )
            try:
                yield made
            finally:
                made.close()


def rate(count: int, action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return count / (time.perf_counter() - started)


def measure(name: str, backend: str, events: int) -> dict[str, float]:
    with contender(name, backend) as c:
        streams = [f"s-{i}" for i in range(events // 10)]

        def one_per_txn() -> None:
            for i in range(events):
                stream = streams[i % len(streams)]
                c.append(stream, 1, i // len(streams))

        def ten_per_txn() -> None:
            for i, stream in enumerate(streams):
                c.append(f"b-{stream}", 10, 0)
                del i

        out = {"append x1": rate(events, one_per_txn), "append x10": rate(events, ten_per_txn)}
        # Reading 2 x `events` takes a few milliseconds, too short to time on a shared
        # machine: read the whole store repeatedly, at least READ_AT_LEAST events in all.
        passes = max(1, -(-READ_AT_LEAST // (2 * events)))

        def read_passes() -> None:
            for _ in range(passes):
                c.read_all()

        out["read all"] = rate(2 * events * passes, read_passes)
        return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--backends", default="sqlite,postgres")
    args = parser.parse_args()
    table = [
        "| backend | measure | plait events/s | eventsourcing events/s | ratio (median) | target |",
        "|---|---|---|---|---|---|",
    ]
    verdicts: list[str] = []
    for backend in args.backends.split(","):
        runs: dict[str, dict[str, list[float]]] = {"plait": {}, "eventsourcing": {}}
        for run in range(args.runs):
            order = ["plait", "eventsourcing"] if run % 2 == 0 else ["eventsourcing", "plait"]
            for name in order:
                for key, value in measure(name, backend, args.events).items():
                    runs[name].setdefault(key, []).append(value)
        for key in ("append x1", "append x10", "read all"):
            mine, theirs = runs["plait"][key], runs["eventsourcing"][key]
            ratio = statistics.median(mine) / statistics.median(theirs)
            target = 2.0 if key == "read all" else 1.5
            met = "met" if ratio >= target else "MISSED"
            table.append(
                f"| {backend} | {key} | {spread(mine)} | {spread(theirs)} | {ratio:.2f}x "
                f"| >= {target}x ({met}) |"
            )
            verdicts.append(met)
        print("\n".join(table[-3:]), flush=True)
    notes = [
        f"{args.events} events per append measure ({READ_AT_LEAST:,}+ read per read measure),",
        f"{args.runs} runs, median (min-max). plait stores the",
        "full envelope (event id, schema version, metadata, recorded_at) and the hash chain;",
        "eventsourcing's recorders store originator id, version, topic and state. eventsourcing",
        "runs with its defaults (SQLite: WAL with synchronous=FULL; plait uses WAL with",
        "synchronous=NORMAL, durable across process crashes).",
    ]
    print(append_section("Event store throughput", "python -m bench.store", table, notes))


if __name__ == "__main__":
    main()
