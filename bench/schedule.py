"""Batch barriers against the ready queue on a DAG: 12 tasks whose critical path is 11 s and
whose batch maxima sum to 17 s (issue 18's plan), with a test command.

    python -m bench.schedule [--runs 3] [--test-seconds 0.5] [--no-record]

Side by side in one run, order rotating between runs, each on a fresh repository:
- `plait run` with `schedule: batch` (the default) and with `schedule: ready`: the whole
  command (a fresh process, start-up and exit included, SQLite store);
- dataflow bash: a script that starts each task (its `sleep`) as soon as its dependencies
  finished, and nothing else (no git, no tests): the DAG's own floor.

Targets (issue 18): the ready run's wall time within 15% of the critical path plus the test
runs on the path. That bound is the baseline test run plus, along the dependency chain that
weighs the most with one test run added per task (each task on the path is merged and tested
before its dependents start), every task's duration and a test run. The batch schedule's own
bound (each batch's longest task plus a test run per batch, plus the baseline) is printed
beside it. Both plait runs do the same work with the same guarantees (every merge tested
before it lands); the bash script does none of it.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.machine import describe
from bench.orchestration import fresh, make_repo, ms
from bench.results import append_section
from plait.domain.plan.batching import plan_batches
from plait.domain.plan.expected import critical_path
from plait.domain.plan.parsing import plan_from_mapping

PLAIT = str(Path(sys.executable).with_name("plait"))
TARGET = 1.15
# (task, seconds, depends on): critical paths a-d-f-i and b-h (11 s); batch maxima 6+5+4+2.
DAG: list[tuple[str, float, tuple[str, ...]]] = [
    ("a", 1, ()), ("b", 6, ()), ("c", 2, ()), ("k", 1, ()),
    ("d", 5, ("a",)), ("e", 1, ("c",)), ("h", 5, ("b",)), ("l", 1, ("k",)),
    ("f", 4, ("d",)), ("g", 1, ("e",)),
    ("i", 1, ("f",)), ("j", 2, ("g",)),
]  # fmt: skip


def plan_dict(schedule: str, test_seconds: float) -> dict[str, object]:
    return {
        "schedule": schedule,
        "max_concurrency": 6,
        "retries": 0,
        "test_command": f"sleep {test_seconds:g}",
        "tasks": [
            {
                "id": task_id,
                "run": f"sleep {seconds:g} && echo {task_id} > {task_id}.txt",
                "depends_on": list(deps),
                "estimate": seconds,
            }
            for task_id, seconds, deps in DAG
        ],
    }


def bounds(test_seconds: float) -> tuple[float, float, float, float]:
    """(critical path, ready bound, batch maxima, batch bound) in seconds."""
    weight = {t: s for t, s, _ in DAG}
    deps = {t: d for t, _, d in DAG}
    order = [t for t, _, _ in DAG]
    _, critical = critical_path(order, deps, weight)
    with_tests = {t: s + test_seconds for t, s in weight.items()}
    _, tested = critical_path(order, deps, with_tests)
    plan = plan_from_mapping(plan_dict("batch", test_seconds))
    maxima = sum(max(weight[t] for t in b.task_ids) for b in plan_batches(plan))
    batches = len(plan_batches(plan))
    return critical, test_seconds + tested, maxima, test_seconds + maxima + batches * test_seconds


def run_plait(work: Path, schedule: str, test_seconds: float) -> float:
    repo = make_repo(work)
    plan_file = work / "plan.json"
    plan_file.write_text(json.dumps(plan_dict(schedule, test_seconds)))
    argv = [PLAIT, "run", str(plan_file), "--repo", str(repo)]
    argv += ["--db", f"sqlite:///{work / 'plait.db'}", "--worktree-root", str(work / "wt")]
    started = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    elapsed = time.perf_counter() - started
    listed = subprocess.run(
        ["git", "ls-tree", "--name-only", "main"], cwd=repo, capture_output=True, text=True
    ).stdout.split()
    missing = [t for t, _, _ in DAG if f"{t}.txt" not in listed]
    if missing:
        raise RuntimeError(f"{schedule}: not landed on main: {missing}")
    return elapsed


def run_dataflow(work: Path) -> float:
    """Each task (its sleep) starts once every task it depends on has left its marker."""
    script = ["set -e", f"cd {work}"]
    for task_id, seconds, deps in DAG:
        ready = " && ".join(f"[ -e {d}.done ]" for d in deps)
        wait = f"until {ready}; do sleep 0.01; done; " if deps else ""
        script.append(f"( {wait}sleep {seconds:g}; touch {task_id}.done ) &")
    script.append("wait")
    started = time.perf_counter()
    subprocess.run(["bash", "-c", "\n".join(script)], check=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--test-seconds", type=float, default=0.5)
    parser.add_argument("--no-record", action="store_true", help="print only")
    args = parser.parse_args()
    print(describe(), flush=True)
    critical, ready_bound, maxima, batch_bound = bounds(args.test_seconds)
    names = ["plait batch", "plait ready", "dataflow bash"]
    times: dict[str, list[float]] = {n: [] for n in names}
    with tempfile.TemporaryDirectory(prefix="plait-schedule-") as tmp:
        root = Path(tmp)
        for run in range(args.runs):
            for name in names[run % 3 :] + names[: run % 3]:
                work = fresh(root, f"{run}-{name.replace(' ', '-')}")
                if name == "dataflow bash":
                    elapsed = run_dataflow(work)
                else:
                    elapsed = run_plait(work, name.split()[1], args.test_seconds)
                times[name].append(elapsed)
                print(f"run {run + 1}: {name} {elapsed:.2f} s", flush=True)
                shutil.rmtree(work, ignore_errors=True)
    ready = statistics.median(times["plait ready"])
    batch = statistics.median(times["plait batch"])
    verdict = "met" if ready <= TARGET * ready_bound else "MISSED"
    ratios = [r / ready_bound for r in times["plait ready"]]
    table = [
        "| contender | wall ms | bound ms | ratio to bound | target |",
        "|---|---|---|---|---|",
        f"| plait, schedule: ready | {ms(times['plait ready'])} | {ready_bound * 1000:,.0f} "
        f"(critical path {critical:g} s + tests on it) | {ready / ready_bound:.2f}x "
        f"({min(ratios):.2f}-{max(ratios):.2f}) | <= {TARGET}x ({verdict}) |",
        f"| plait, schedule: batch | {ms(times['plait batch'])} | {batch_bound * 1000:,.0f} "
        f"(batch maxima {maxima:g} s + a test per batch) | {batch / batch_bound:.2f}x | - |",
        f"| dataflow bash (no git, no tests) | {ms(times['dataflow bash'])} | "
        f"{critical * 1000:,.0f} (critical path) | "
        f"{statistics.median(times['dataflow bash']) / critical:.2f}x | - |",
        f"| ready vs batch | | | {ready / batch:.2f}x | - |",
    ]
    notes = [
        f"12 tasks (`sleep N && echo id > id.txt`), max_concurrency 6, test command `sleep "
        f"{args.test_seconds:g}`; {args.runs} runs, contenders rotating; median (min-max). "
        "Both plait contenders are the whole `plait run` command on a fresh repository and "
        "SQLite store, with the same guarantees (every merge tested before it lands); the "
        "bash contender only sleeps in dependency order.",
    ]
    command = f"python -m bench.schedule --runs {args.runs} --test-seconds {args.test_seconds:g}"
    if args.no_record:
        print("\n".join([*table, "", *notes]))
    else:
        print(append_section("Batch barriers vs the ready queue on a DAG", command, table, notes))


if __name__ == "__main__":
    main()
