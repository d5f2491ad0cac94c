"""The whole `plait run` command against the bash+git floor, start-up and exit included.

    python -m bench.orchestration_cli [--sizes 10,30,100,300] [--batches 3] [--concurrency 3]
                                      [--runs 3] [--no-count] [--no-record] [--no-compile]

What a user runs: `plait run PLAN --repo REPO --db sqlite:///FILE` as a fresh process (the
interpreter's start-up, imports, the store's creation and migration, the run, the terminal
output and the exit), timed from spawn to exit, against FLOOR_SCRIPT of bench/orchestration.py
(a fresh `bash` doing the same git work with the same parallelism, its start-up included),
side by side: per size the two alternate run by run (who goes first alternates too), each on
a fresh repository and plait on a fresh SQLite file.

For each size N (default 10, 30, 100 and 300 trivial tasks, each `echo <id> > <id>.txt`) the
plan has `--batches` explicit batches of about N/batches tasks, max_concurrency
`--concurrency`, no test command. Reported per size: both wall times, plait/floor (median of
the per-run ratios), each side's cost per task (wall / N), and between consecutive sizes the
marginal cost per task ((wall(N2) - wall(N1)) / (N2 - N1)), which shows whether anything
grows faster than the work.

Targets (issue 18): plait run <= 1.3x the floor at 30 tasks in 3 batches; per-task cost flat
from 10 to 300, read as plait's marginal cost per task from 100 to 300 tasks at most 1.3x the
floor's over the same step (growth that the git work itself has, e.g. more refs, is on both
sides).

plait's bytecode is compiled first (`compileall`), as an installed plait has it: where
PYTHONDONTWRITEBYTECODE is set, each run would otherwise compile every module again
(about 0.1 s here); `--no-compile` leaves it as it is.

Unless `--no-count`, one more run of each at the 30-task size goes through a counting `git`
first on PATH (a shell script that logs its first argument and execs the real git; the
counting run is not timed) and the git processes per task are printed by subcommand.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import plait as plait_package
from bench.machine import describe
from bench.orchestration import (
    GIT_LOGGER,
    WRITE_FILE,
    check_result,
    fresh,
    make_repo,
    plan_for,
    run_floor,
)
from bench.results import append_section
from plait.eventstore import SqlEventStore

TARGET = 1.3
PLAIT = str(Path(sys.executable).with_name("plait"))


def split(tasks: int, batches: int) -> list[list[str]]:
    """`tasks` ids in `batches` batches as even as they go (10 in 3: 4, 3, 3)."""
    sizes = [tasks // batches + (1 if b < tasks % batches else 0) for b in range(batches)]
    return [[f"b{b}t{t}" for t in range(size)] for b, size in enumerate(sizes)]


def run_cli(
    work: Path, batches: list[list[str]], concurrency: int, *, fresh_db: bool = False
) -> float:
    repo = make_repo(work)
    plan_file = work / "plan.json"
    plan_file.write_text(json.dumps(plan_for(batches, concurrency, WRITE_FILE).to_dict()))
    argv = [PLAIT, "run", str(plan_file), "--repo", str(repo)]
    url = f"sqlite:///{work / 'plait.db'}"
    if not fresh_db:
        SqlEventStore(url).close()  # the database a user's earlier command created
    argv += ["--db", url, "--worktree-root", str(work / "wt")]
    started = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    elapsed = time.perf_counter() - started
    check_result(repo, batches)
    return elapsed


def git_counts(root: Path, batches: list[list[str]], concurrency: int) -> dict[str, Counter[str]]:
    """Git subcommands run by each side, via a logging `git` first on PATH."""
    bin_dir = fresh(root, "gitlog-bin")
    (bin_dir / "git").write_text(GIT_LOGGER)
    (bin_dir / "git").chmod(0o755)
    real = shutil.which("git") or "git"
    counts: dict[str, Counter[str]] = {}
    saved = dict(os.environ)
    try:
        for name in ("floor", "plait run"):
            log = root / f"{name.replace(' ', '-')}.gitlog"
            os.environ.update(PATH=f"{bin_dir}:{saved['PATH']}", GIT_LOG=str(log), REAL_GIT=real)
            work = fresh(root, f"count-{name.replace(' ', '-')}")
            if name == "floor":
                run_floor(work, batches, concurrency)
            else:
                run_cli(work, batches, concurrency)
            log.touch()
            counts[name] = Counter(log.read_text().split()[6:])  # make_repo's six are not
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--sizes", default="10,30,100,300")
    parser.add_argument("--batches", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=3)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-count", action="store_true", help="skip the git-counting runs")
    parser.add_argument(
        "--fresh-db", action="store_true", help="plait on a database it must create and migrate"
    )
    parser.add_argument("--no-record", action="store_true", help="print only")
    parser.add_argument(
        "--no-compile", action="store_true", help="leave plait's bytecode as it is (or is not)"
    )
    args = parser.parse_args()
    print(describe(), flush=True)
    if not args.no_compile:
        # An installed plait has its bytecode (pip compiles at install; an editable one
        # writes it on first import), unless PYTHONDONTWRITEBYTECODE is set, as it may be
        # where benches run: then each run would compile every module again.
        compileall.compile_dir(Path(plait_package.__file__).parent, quiet=1)
    sizes = [int(s) for s in args.sizes.split(",")]
    times: dict[int, dict[str, list[float]]] = {}
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="plait-bench-cli-") as tmp:
        root = Path(tmp)
        for size in sizes:
            batches = split(size, args.batches)
            times[size] = {"floor": [], "plait run": []}
            for run in range(args.runs):
                order = ["floor", "plait run"] if run % 2 == 0 else ["plait run", "floor"]
                for name in order:
                    work = fresh(root, f"{size}-{run}-{name.replace(' ', '-')}")
                    if name == "floor":
                        elapsed = run_floor(work, batches, args.concurrency)
                    else:
                        elapsed = run_cli(work, batches, args.concurrency, fresh_db=args.fresh_db)
                    times[size][name].append(elapsed)
                    print(
                        f"{size} tasks, run {run + 1}: {name} {elapsed * 1000:,.0f} ms", flush=True
                    )
                    shutil.rmtree(work, ignore_errors=True)
        counted = 30 if 30 in sizes else sizes[0]
        if not args.no_count:
            counts = git_counts(root, split(counted, args.batches), args.concurrency)
            for name, counter in counts.items():
                total = sum(counter.values())
                line = (
                    f"git processes, {name}: {total} ({total / counted:.2f} per task at "
                    f"{counted} tasks): {dict(counter.most_common())}"
                )
                print(line, flush=True)
                notes.append(f"- {line}")
    table = [
        "| tasks | floor ms | plait run ms | plait run / floor | per task ms (floor / plait run) "
        "| plait run - floor per task ms (paired) | marginal per task ms (floor / plait run) "
        "| target |",
        "|---|---|---|---|---|---|---|---|",
    ]
    previous: int | None = None
    slopes: dict[int, tuple[float, float]] = {}
    for size in sizes:
        floor, plait = times[size]["floor"], times[size]["plait run"]
        ratios = [p / f for p, f in zip(plait, floor, strict=True)]
        ratio = statistics.median(ratios)
        paired = statistics.median(p - f for p, f in zip(plait, floor, strict=True))
        f_mid, p_mid = statistics.median(floor), statistics.median(plait)
        marginal = "-"
        target = ""
        if previous is not None:
            f_prev = statistics.median(times[previous]["floor"])
            p_prev = statistics.median(times[previous]["plait run"])
            step = size - previous
            slopes[size] = ((f_mid - f_prev) * 1000 / step, (p_mid - p_prev) * 1000 / step)
            marginal = f"{slopes[size][0]:.1f} / {slopes[size][1]:.1f}"
        if size == 30:
            target = f"<= {TARGET}x ({'met' if ratio <= TARGET else 'MISSED'})"
        if size == sizes[-1] and size in slopes and len(sizes) > 2:
            f_slope, p_slope = slopes[size]
            flat = p_slope <= TARGET * f_slope
            target = (
                f"marginal <= {TARGET}x the floor's: {p_slope / f_slope:.2f}x "
                f"({'met' if flat else 'MISSED'})"
            )
        table.append(
            f"| {size} | {f_mid * 1000:,.0f} ({min(floor) * 1000:,.0f}-{max(floor) * 1000:,.0f}) "
            f"| {p_mid * 1000:,.0f} ({min(plait) * 1000:,.0f}-{max(plait) * 1000:,.0f}) "
            f"| {ratio:.2f}x ({min(ratios):.2f}-{max(ratios):.2f}) "
            f"| {f_mid * 1000 / size:.1f} / {p_mid * 1000 / size:.1f} "
            f"| {paired * 1000 / size:.1f} "
            f"| {marginal} | {target} |"
        )
        previous = size
    print("\n".join(table), flush=True)
    notes.insert(
        0,
        f"Trivial tasks in {args.batches} batches, max_concurrency {args.concurrency}, no test "
        f"command; {args.runs} runs per size, the two alternating; median (min-max). Both sides "
        "are fresh processes timed from spawn to exit. plait records every event in SQLite (WAL, "
        "its default durability) in a database that exists already (created untimed before "
        "the run, as a user's first command does; `--fresh-db` times its creation and "
        "migration too); the floor keeps no record at all. Both leave every task's file on "
        "`main` (checked). "
        + (
            "plait's bytecode as it was (`--no-compile`)."
            if args.no_compile
            else "plait's bytecode compiled first, as an installed plait has it."
        ),
    )
    command = (
        f"python -m bench.orchestration_cli --sizes {args.sizes} --batches {args.batches} "
        f"--concurrency {args.concurrency} --runs {args.runs}"
        + (" --fresh-db" if args.fresh_db else "")
        + (" --no-compile" if args.no_compile else "")
    )
    if args.no_record:
        print("\n".join(notes))
    else:
        append_section("The whole `plait run` command vs the git floor", command, table, notes)


if __name__ == "__main__":
    main()
