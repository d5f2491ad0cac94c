"""Status and history reads as the history grows: 10^3 events against 10^6, side by side.

    python -m bench.status [--sizes 1000,1000000] [--backends sqlite,postgres] [--rounds 5]
                           [--reads 400] [--history-reads 40] [--no-record]

For each backend, one store per size is built (SQLite: a temporary file; PostgreSQL: a fresh
schema each, dropped afterwards) holding realistic run histories: every run has 4 batches of
5 tasks, each task writing 12 TaskOutput events (363 events a run, two thirds of them
output), 10 projects, each run's events appended in one transaction. The projections are
brought up with `Projector(store, all_projections()).catch_up()`. Then, all stores open at
once, in rounds whose store order alternates:

- status: `ReadModels.run_status(run_id)` of a random run (one row whatever the history);
- timeline: `ReadModels.timeline(run_id=...)`, the run's audit trail (363 rows);
- state at: `ReadModels.run_state_at(run_id, until)`, the run replayed to its middle.

Each round gives p50 and p99 per store; the table shows median (min-max) over the rounds and
the ratio largest/smallest store, computed per round. Every run is the same size, so the
history reads should not grow with the store either.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from bench.machine import describe
from bench.results import append_section
from bench.store import PG, pg_schema
from plait.domain.events import DomainEvent
from plait.eventstore import NewEvent, SqlEventStore
from plait.projections import Projector, ReadModels, all_projections
from plait.projections.codec import encode, project_stream, run_stream
from tests.histories import project_run_end, project_run_start, registered, run_events

BATCHES = [[f"t{b}{t}" for t in range(5)] for b in range(4)]
OUTPUTS = 12
PROJECTS = 10
TARGET = 1.5  # largest store's p50 at most 1.5x the smallest's
META = {"actor": "bench"}


@dataclass
class Built:
    size: int
    events: int
    store: SqlEventStore
    runs: list[str]
    append_s: float
    project_s: float
    middles: dict[str, int] = field(default_factory=dict)


def encoded(events: Sequence[DomainEvent]) -> list[NewEvent]:
    return [encode(e, META) for e in events]


def build(store: SqlEventStore, size: int) -> Built:
    per_run = len(run_events("p", "r", BATCHES, OUTPUTS))
    runs = max(1, round(size / (per_run + 2)))
    projects = [f"p{i:02d}" for i in range(min(PROJECTS, runs))]
    started = time.perf_counter()
    for project in projects:
        store.append(project_stream(project), encoded(registered(project, BATCHES)), 0)
    run_ids: list[str] = []
    for i in range(runs):
        project, run_id = projects[i % len(projects)], f"r{i:07d}"
        store.append(project_stream(project), encoded([project_run_start(project, run_id)]), None)
        store.append(run_stream(run_id), encoded(run_events(project, run_id, BATCHES, OUTPUTS)), 0)
        store.append(project_stream(project), encoded([project_run_end(project, run_id)]), None)
        run_ids.append(run_id)
        if store.dialect == "postgresql" and i % 50 == 49:
            analyze(store)
    appended = time.perf_counter() - started
    started = time.perf_counter()
    Projector(store, all_projections()).catch_up()
    projected = time.perf_counter() - started
    built = Built(size, store.last_position(), store, run_ids, appended, projected)
    read = ReadModels(store)
    for run_id in run_ids:
        rows = read.timeline(run_id=run_id)
        built.middles[run_id] = int(rows[len(rows) // 2]["position"])
    return built


def analyze(store: SqlEventStore) -> None:
    """What autovacuum would do on a live server, sooner: see the note on stale statistics."""
    with store.engine.connect() as conn:
        conn.exec_driver_sql("ANALYZE plait_events")
        conn.commit()


@contextmanager
def open_store(backend: str, tmp: Path, size: int) -> Iterator[SqlEventStore]:
    if backend == "sqlite":
        store = SqlEventStore(f"sqlite:///{tmp / f'status-{size}.db'}")
        try:
            yield store
        finally:
            store.close()
    else:
        with pg_schema() as schema:
            store = SqlEventStore(f"{PG}?options=-csearch_path%3D{schema}")
            try:
                yield store
            finally:
                store.close()


def timings_ms(count: int, action: Callable[[], object]) -> list[float]:
    out = []
    for _ in range(count):
        started = time.perf_counter_ns()
        action()
        out.append((time.perf_counter_ns() - started) / 1e6)
    return out


def p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


Rounds = dict[tuple[int, str], dict[str, list[float]]]  # (size, measure) -> p50/p99 per round


def actions(built: Built, rng: random.Random) -> dict[str, Callable[[], object]]:
    read = ReadModels(built.store)
    runs, middles = built.runs, built.middles

    def status() -> object:
        return read.run_status(rng.choice(runs))

    def timeline() -> object:
        return read.timeline(run_id=rng.choice(runs))

    def state_at() -> object:
        run_id = rng.choice(runs)
        return read.run_state_at(run_id, middles[run_id])

    return {"status": status, "timeline": timeline, "state at": state_at}


def measure(
    stores: list[Built], rounds: int, reads: int, history_reads: int, rng: random.Random
) -> Rounds:
    out: Rounds = {}
    counts = {"status": reads, "timeline": history_reads, "state at": history_reads}
    for r in range(rounds):
        for built in stores if r % 2 == 0 else list(reversed(stores)):
            for name, action in actions(built, rng).items():
                action()  # warm: connection pool, statement cache
                values = timings_ms(counts[name], action)
                slot = out.setdefault((built.size, name), {"p50": [], "p99": []})
                slot["p50"].append(p(values, 0.50))
                slot["p99"].append(p(values, 0.99))
    return out


def ms(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"


def ratio(big: list[float], small: list[float]) -> float:
    return statistics.median(b / s for b, s in zip(big, small, strict=True))


def run_backend(
    backend: str, sizes: list[int], args: argparse.Namespace
) -> tuple[list[str], list[str]]:
    rows: list[str] = []
    notes: list[str] = []
    rng = random.Random(7)
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        stores: list[Built] = []
        for size in sizes:
            store = stack.enter_context(open_store(backend, Path(tmp), size))
            built = build(store, size)
            stores.append(built)
            line = (
                f"{backend} {built.events:,} events ({len(built.runs):,} runs): appended in "
                f"{built.append_s:.1f} s ({built.events / built.append_s:,.0f} events/s), "
                f"projections caught up in {built.project_s:.1f} s "
                f"({built.events / built.project_s:,.0f} events/s)"
            )
            print(line, flush=True)
            notes.append(f"- build: {line}.")
        results = measure(stores, args.rounds, args.reads, args.history_reads, rng)
    small, big = sizes[0], sizes[-1]
    for name in ("status", "timeline", "state at"):
        for built in stores:
            r = results[(built.size, name)]
            cells = [backend, name, f"{built.events:,}", ms(r["p50"]), ms(r["p99"])]
            if built.size == big and big != small:
                base = results[(small, name)]
                x50 = ratio(r["p50"], base["p50"])
                x99 = ratio(r["p99"], base["p99"])
                verdict = "met" if x50 <= TARGET else "MISSED"
                cells += [f"{x50:.2f}x / {x99:.2f}x", f"p50 <= {TARGET}x ({verdict})"]
            else:
                cells += ["1", ""]
            rows.append("| " + " | ".join(cells) + " |")
            print(rows[-1], flush=True)
    return rows, notes


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--sizes", default="1000,1000000")
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--reads", type=int, default=400, help="status reads per store a round")
    parser.add_argument("--history-reads", type=int, default=40, help="each history read, a round")
    parser.add_argument("--no-record", action="store_true", help="print only")
    args = parser.parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(","))
    print(describe(), flush=True)
    table = [
        "| backend | read | events | p50 ms | p99 ms | vs smallest (p50 / p99) | target |",
        "|---|---|---|---|---|---|---|",
    ]
    notes = [
        f"{args.rounds} rounds; a round: {args.reads} status reads and {args.history_reads} of "
        "each history read per store, stores alternating; median (min-max) over rounds; "
        "ratios per round, median. Runs are 363 events (4 batches x 5 tasks, 12 outputs each).",
    ]
    for backend in args.backends.split(","):
        rows, built = run_backend(backend, sizes, args)
        table += rows
        notes += built
    command = f"python -m bench.status --sizes {args.sizes} --backends {args.backends}"
    if args.no_record:
        print("\n".join([*table, "", *notes]))
    else:
        print(append_section("Status and history reads vs history size", command, table, notes))


if __name__ == "__main__":
    main()
