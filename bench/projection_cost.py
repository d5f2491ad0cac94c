"""What projecting one event costs as the run grows: a 9-task run against a 300-task one.

    python -m bench.projection_cost [--tasks 9,300] [--rounds 5] [--no-record]

For each size, a realistic run history (tests/histories.py: two batches, two TaskOutput
events per task) is stored in a fresh SQLite file, then applied by the projections
(`all_projections()`) one event per page, as a live projector mostly sees them; each event is
timed, and the run_status projection alone too. The sizes alternate round by round, each
round on a fresh store. Reported: the median per-event cost in ms at each size, and the
largest size's against the smallest's. Target (issue 18): an event costs the same whatever
the size of its run (here: at most 1.5x).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from bench.machine import describe
from bench.results import append_section
from plait.eventstore import SqlEventStore
from plait.projections import Projector, RunStatusProjection, all_projections
from plait.projections.codec import encode, run_stream, stream_of
from tests.histories import project_run_start, registered, run_events

TARGET = 1.5


def per_event_ms(root: Path, tasks: int, only_status: bool) -> float:
    """Median ms to project one event of a `tasks`-task run, one event per page."""
    store = SqlEventStore(f"sqlite:///{root / f'{tasks}-{only_status}.db'}")
    try:
        project, run = f"p{tasks}", f"r{tasks}"
        half = tasks // 2
        batches = [[f"t{i}" for i in range(half)], [f"t{i}" for i in range(half, tasks)]]
        for event in [*registered(project, batches), project_run_start(project, run)]:
            store.append(stream_of(event), [encode(event)], expected_version=None)
        history = run_events(project, run, batches, 2)
        store.append(run_stream(run), [encode(e) for e in history], expected_version=None)
        projections = [RunStatusProjection()] if only_status else all_projections()
        projector = Projector(store, projections)
        times = []
        for stored in store.read_all(0, 1_000_000):
            started = time.perf_counter()
            projector.apply([stored])
            times.append((time.perf_counter() - started) * 1000)
        return statistics.median(times)
    finally:
        store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--tasks", default="9,300")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--no-record", action="store_true", help="print only")
    args = parser.parse_args()
    print(describe(), flush=True)
    sizes = [int(t) for t in args.tasks.split(",")]
    measured: dict[tuple[int, bool], list[float]] = {}
    for round_ in range(args.rounds):
        for size in sizes if round_ % 2 == 0 else list(reversed(sizes)):
            for only_status in (True, False):
                with tempfile.TemporaryDirectory(prefix="plait-bench-proj-") as tmp:
                    value = per_event_ms(Path(tmp), size, only_status)
                measured.setdefault((size, only_status), []).append(value)
                print(f"round {round_ + 1}: {size} tasks, status={only_status}: {value:.3f} ms")
    table = [
        "| projections | "
        + " | ".join(f"{s} tasks, ms per event" for s in sizes)
        + f" | {sizes[-1]} vs {sizes[0]} | target |",
        "|---|" + "---|" * (len(sizes) + 2),
    ]
    for only_status, label in ((True, "run_status"), (False, "all three")):
        cells = [statistics.median(measured[(s, only_status)]) for s in sizes]
        ratio = cells[-1] / cells[0]
        verdict = "met" if ratio <= TARGET else "MISSED"
        table.append(
            f"| {label} | "
            + " | ".join(f"{c:.3f}" for c in cells)
            + f" | {ratio:.2f}x | <= {TARGET}x ({verdict}) |"
        )
    print("\n".join(table))
    notes = [
        f"{args.rounds} rounds, sizes alternating, each on a fresh SQLite store; per round the "
        "median over every event of the history, applied one event per page (one transaction "
        "each, with the projection's checkpoint); the median of the rounds. The run_status "
        "projection keeps each run in memory and writes its snapshot once per status change "
        "or per task's worth of events (plait/projections/run_status.py).",
    ]
    if args.no_record:
        print("\n".join(notes))
    else:
        command = f"python -m bench.projection_cost --tasks {args.tasks} --rounds {args.rounds}"
        append_section("Projecting one event as the run grows", command, table, notes)


if __name__ == "__main__":
    main()
