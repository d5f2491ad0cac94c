"""Parallel speed-up: 6 independent tasks of `sleep 2` at max_concurrency 3, 6 and 1.

    python -m bench.speedup [--tasks 6] [--sleep 2] [--concurrency 3,6,1] [--runs 3]
                            [--no-record]

For each concurrency c, side by side in one run (order rotating between runs):
- git floor: the bash floor of bench/orchestration.py with 6 trivial tasks (write a file),
  same c: the git work alone;
- floor + sleep: the same bash floor with the real tasks (`sleep 2 && echo ...`);
- plait: the in-process service (start_run to the run's end, fresh SQLite store), real tasks.
Ideal = sleep x ceil(tasks / c): 4 s, 2 s and 12 s. Target: plait's wall time within 0.5 s
of the ideal plus the git floor measured for that c.
"""

from __future__ import annotations

import argparse
import math
import shutil
import statistics
import tempfile
from pathlib import Path

from bench.machine import describe
from bench.orchestration import WRITE_FILE, fresh, ms, plan_for, run_floor, run_plait
from bench.results import append_section

SLACK = 0.5  # seconds beyond ideal + git floor


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--tasks", type=int, default=6)
    parser.add_argument("--sleep", type=float, default=2.0)
    parser.add_argument("--concurrency", default="3,6,1")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-record", action="store_true", help="print only")
    args = parser.parse_args()
    print(describe(), flush=True)
    batches = [[f"s{i}" for i in range(args.tasks)]]
    sleeping = f"sleep {args.sleep:g} && {WRITE_FILE}"
    table = [
        "| concurrency | ideal s | git floor ms | floor + sleep ms | plait ms | plait - ideal "
        "- git floor ms | target |",
        "|---|---|---|---|---|---|---|",
    ]
    names = ["git floor", "floor + sleep", "plait"]
    with tempfile.TemporaryDirectory(prefix="plait-speedup-") as tmp:
        root = Path(tmp)
        for c in (int(x) for x in args.concurrency.split(",")):
            ideal = args.sleep * math.ceil(args.tasks / c)
            plan = plan_for(batches, c, sleeping)
            times: dict[str, list[float]] = {n: [] for n in names}
            for run in range(args.runs):
                for name in names[run % 3 :] + names[: run % 3]:
                    work = fresh(root, f"c{c}-{run}-{name.replace(' ', '-')}")
                    if name == "git floor":
                        elapsed = run_floor(work, batches, c)
                    elif name == "floor + sleep":
                        elapsed = run_floor(work, batches, c, sleeping)
                    else:
                        elapsed = run_plait(work, plan)
                    times[name].append(elapsed)
                    print(f"c={c} run {run + 1}: {name} {elapsed * 1000:,.0f} ms", flush=True)
                    shutil.rmtree(work, ignore_errors=True)
            # Per run: plait - ideal - that run's git floor.
            beyond = [
                p - ideal - f for p, f in zip(times["plait"], times["git floor"], strict=True)
            ]
            excess = statistics.median(beyond)
            verdict = "met" if excess <= SLACK else "MISSED"
            table.append(
                f"| {c} | {ideal:g} | {ms(times['git floor'])} | {ms(times['floor + sleep'])} "
                f"| {ms(times['plait'])} | {ms(beyond)} | <= {SLACK * 1000:,.0f} ({verdict}) |"
            )
            print(table[-1], flush=True)
    notes = [
        f"{args.tasks} independent tasks (`{sleeping}`), one batch, no test command; "
        f"{args.runs} runs per concurrency, contenders rotating; median (min-max). "
        "The excess column is computed per run against that run's git floor.",
    ]
    command = (
        f"python -m bench.speedup --tasks {args.tasks} --sleep {args.sleep:g} "
        f"--concurrency {args.concurrency} --runs {args.runs}"
    )
    if args.no_record:
        print("\n".join([*table, "", *notes]))
    else:
        print(append_section("Parallel speed-up vs the ideal", command, table, notes))


if __name__ == "__main__":
    main()
