"""Where an SQLite append's time goes: each store's whole append against its SQLite work alone.

    pip install -e '.[bench]' && python -m bench.store_floor [--sync NORMAL] [--appends 2000]
        [--runs 3] [--no-record]

bench/store.py compares plait's appends with the `eventsourcing` library's. This one splits
each figure in two, side by side in one run: the store's whole append (as bench/store.py
times it), and the same SQLite statements replayed on a raw connection with rows built
beforehand (BEGIN, the INSERTs as the store issues them, COMMIT), on a fresh database whose
schema the store itself created (plait's triggers and indexes included). The difference is
the store's Python (plait's includes the plait-only part of its statements: the state read,
PRAGMA data_version). Two more plait rows replay its statements on its schema without the
unique event-id index, and without the project-runs trigger: what-ifs, to price each (plait
needs both: idempotent retries, one active run per project). Each replay also counts the WAL
frames (dirty pages) a commit writes. At `synchronous=NORMAL` in WAL mode a commit writes its
pages to the WAL without a flush, so its cost grows with them.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from bench.results import append_section
from bench.store import PAYLOAD, EventSourcing, Plait
from plait.eventstore.records import time_ordered_uuid
from plait.eventstore.sqlite_store import _INSERT

ROUNDS = 20
CHECKPOINT_EVERY = 100  # as plait's checkpointer; untimed in the replays
ES_INSERT = "INSERT INTO stored_events VALUES (?,?,?,?)"
EVENT_ID_UNIQUE = ", \n\tCONSTRAINT uq_plait_events_event_id UNIQUE (event_id)"


class Replay:
    """A store's SQLite statements alone, on a raw connection, rows built beforehand."""

    def __init__(self, path: Path, sync: str, kind: str) -> None:
        self.connection = sqlite3.connect(path, isolation_level=None)
        self.connection.execute("PRAGMA journal_mode = WAL")
        self.connection.execute(f"PRAGMA synchronous = {sync}")
        self.path, self.kind = path, kind
        self.position, self.commits = 0, 0
        self.begin = "BEGIN" if kind == "eventsourcing" else "BEGIN IMMEDIATE"
        self.data = orjson.dumps(PAYLOAD).decode()

    def rows(self, stream: str, count: int, version: int) -> list[tuple[Any, ...]]:
        if self.kind == "eventsourcing":
            state = self.data.encode()
            origin = uuid.uuid5(uuid.NAMESPACE_URL, stream).hex
            return [(origin, version + i + 1, "bench:TaskOutput", state) for i in range(count)]
        stamp = "2026-12-02T07:00:00.000000Z"
        made = []
        for i in range(count):
            self.position += 1
            made.append(
                (
                    self.position,
                    stream,
                    version + i + 1,
                    str(time_ordered_uuid()),
                    "TaskOutput",
                    1,
                    self.data,
                    "{}",
                    stamp,
                    os.urandom(32).hex(),
                )
            )
        return made

    def commit(self, rows: list[tuple[Any, ...]]) -> None:
        connection = self.connection
        connection.execute(self.begin)
        if self.kind == "eventsourcing":  # as its SQLiteApplicationRecorder: a row at a time
            for row in rows:
                connection.execute(ES_INSERT, row)
        else:
            connection.executemany(_INSERT, rows)
        connection.execute("COMMIT")

    def untimed_housekeeping(self) -> None:
        self.commits += 1
        if self.commits % CHECKPOINT_EVERY == 0:
            self.connection.execute("PRAGMA wal_checkpoint(PASSIVE)")

    def frames_per_commit(self, count: int, commits: int = 200) -> float:
        """WAL frames a commit writes: the WAL's growth over `commits` commits, from empty."""
        self.connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        page = int(self.connection.execute("PRAGMA page_size").fetchone()[0])
        wal = Path(f"{self.path}-wal")
        before = wal.stat().st_size if wal.exists() else 0
        for i in range(commits):
            self.commit(self.rows(f"frames-{i % 50}", count, 10_000 + (i // 50) * count))
        grown = wal.stat().st_size - before
        return grown / (page + 24) / commits


def replays(root: Path, sync: str) -> dict[str, Replay]:
    """Fresh databases with each store's own schema, made by the stores themselves; and two
    what-ifs of plait's: without the unique event-id index, without the project-runs trigger."""
    for name in ("plait", "no-index", "no-trigger"):
        Plait(f"sqlite:///{root / f'replay-{name}.db'}", sync).close()
    EventSourcing("sqlite", str(root / "replay-es.db"), sync).close()
    bare = sqlite3.connect(root / "replay-no-index.db", isolation_level=None)
    (sql,) = bare.execute("SELECT sql FROM sqlite_master WHERE name = 'plait_events'").fetchone()
    assert EVENT_ID_UNIQUE in sql, "plait's schema changed: update EVENT_ID_UNIQUE"
    triggers = bare.execute(
        "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'plait_events'"
    ).fetchall()
    bare.execute("DROP TABLE plait_events")  # and its triggers: put back below
    bare.execute(sql.replace(EVENT_ID_UNIQUE, ""))
    for (trigger,) in triggers:
        bare.execute(trigger)
    bare.close()
    untriggered = sqlite3.connect(root / "replay-no-trigger.db", isolation_level=None)
    untriggered.execute("DROP TRIGGER plait_events_project_runs")
    untriggered.close()
    return {
        "plait SQL": Replay(root / "replay-plait.db", sync, "plait"),
        "plait SQL, no event-id index": Replay(root / "replay-no-index.db", sync, "plait"),
        "plait SQL, no project-runs trigger": Replay(root / "replay-no-trigger.db", sync, "plait"),
        "eventsourcing SQL": Replay(root / "replay-es.db", sync, "eventsourcing"),
    }


def measure(sync: str, appends: int, count: int) -> tuple[dict[str, float], dict[str, float]]:
    """Microseconds per append of `count` events for each contender, rounds interleaved;
    and WAL frames per commit of each replay."""
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmp:
        root = Path(tmp)
        plait = Plait(f"sqlite:///{root / 'plait.db'}", sync)
        theirs = EventSourcing("sqlite", str(root / "es.db"), sync)
        sql = replays(root, sync)
        seconds: dict[str, float] = {}
        actions: dict[str, Callable[[str, int], None]] = {
            "plait append": lambda stream, version: plait.append(stream, count, version),
            "eventsourcing append": lambda stream, version: theirs.append(stream, count, version),
        }
        per_round = max(1, appends // ROUNDS)
        names = [*actions, *sql]
        try:
            for round_ in range(ROUNDS):
                shift = round_ % len(names)
                for name in names[shift:] + names[:shift]:
                    streams = [
                        (f"s-{i % 200}", (i // 200) * count) for i in _span(round_, per_round)
                    ]
                    if name in sql:
                        # Each append's rows are built just before it, untimed: ids made all
                        # at once would share milliseconds, in random order within each, and
                        # spread one commit's index entries over more pages than plait's do.
                        replay, elapsed = sql[name], 0.0
                        for s, v in streams:
                            rows = replay.rows(s, count, v)
                            started = time.perf_counter()
                            replay.commit(rows)
                            elapsed += time.perf_counter() - started
                            replay.untimed_housekeeping()
                    else:
                        action = actions[name]
                        started = time.perf_counter()
                        for s, v in streams:
                            action(s, v)
                        elapsed = time.perf_counter() - started
                    seconds[name] = seconds.get(name, 0.0) + elapsed
            frames = {name: replay.frames_per_commit(count) for name, replay in sql.items()}
        finally:
            plait.close()
            theirs.close()
            for replay in sql.values():
                replay.connection.close()
        total = per_round * ROUNDS
        return {name: s / total * 1e6 for name, s in seconds.items()}, frames


def _span(round_: int, size: int) -> range:
    return range(round_ * size, (round_ + 1) * size)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sync", default="NORMAL", help="SQLite synchronous, both stores")
    parser.add_argument("--appends", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-record", action="store_true", help="print only")
    args = parser.parse_args()
    table = [
        "| events per append | contender | us per append, median (range) | WAL frames per commit |",
        "|---|---|---|---|",
    ]
    ceilings = []
    for count in (1, 10):
        runs: dict[str, list[float]] = {}
        frames: dict[str, list[float]] = {}
        for _ in range(args.runs):
            times, pages = measure(args.sync, args.appends, count)
            for name, value in times.items():
                runs.setdefault(name, []).append(value)
            for name, value in pages.items():
                frames.setdefault(name, []).append(value)
        for name, values in runs.items():
            shown = f"{statistics.median(frames[name]):.2f}" if name in frames else "-"
            table.append(
                f"| {count} | {name} | {statistics.median(values):.1f} "
                f"({min(values):.1f}-{max(values):.1f}) | {shown} |"
            )
        ceiling = statistics.median(runs["eventsourcing append"]) / statistics.median(
            runs["plait SQL"]
        )
        ceilings.append(f"{count} per append: {ceiling:.2f}x")
        print("\n".join(table[-6:]), flush=True)
    notes = [
        f"{args.appends} appends per contender and measure, {args.runs} runs, median (min-max);",
        f"the contenders take turns in {ROUNDS} rounds. Both stores at `synchronous="
        f"{args.sync}`, WAL mode. The replays checkpoint every {CHECKPOINT_EVERY} commits,",
        "untimed (plait's checkpointer thread does it off the commit path).",
        "The best ratio plait's appends could reach with no Python at all (eventsourcing's",
        "whole append over plait's SQL alone): " + "; ".join(ceilings) + ".",
    ]
    command = f"python -m bench.store_floor --sync {args.sync} --appends {args.appends} "
    command += f"--runs {args.runs}"
    if args.no_record:
        print("\n".join([*table, "", *notes]))
    else:
        print(append_section("Where an SQLite append's time goes", command, table, notes))


if __name__ == "__main__":
    main()
