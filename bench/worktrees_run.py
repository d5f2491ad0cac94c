"""A whole `plait run` on a big repository, with pooled task repositories and fresh ones.

    python -m bench.worktrees_run [--files 20000] [--tasks 6] [--concurrency 3] [--runs 2]
                                  [--no-profile] [--no-record]

One synthetic repository (bench/synthetic_repo.py, `--files` files, its checkout populated)
serves every contender; each round runs them in turn on it, every one a fresh process timed
from spawn to exit, with task ids of its own (so each lands new files on `main`):

- adds: bash doing `--tasks` plain `git worktree add`s one after the other (their removal
  is not timed): the bare cost the issue compares with;
- floor: FLOOR_SCRIPT of bench/orchestration.py for one batch of `--tasks` trivial tasks at
  `--concurrency` (worktree add, the task, add + commit, merge-tree/commit-tree chain, CAS
  update-ref, worktree remove, ff landing): the same git work as plait;
- plait run --fresh-worktrees: a new task repository (and a checkout of every file) per task;
- plait run: pooled task repositories (the default), the pool in the worktree root it shares
  with its previous rounds. Round 1 starts with no pool ("cold"); from round 2 on the pool
  the previous `plait run` left is there ("warm"): the pool outlives the process.

Unless `--no-profile`, one more run of each plait contender goes through a timing `git`
first on PATH (a bash script that logs each subcommand and its wall time) and the git time
per subcommand is printed: where the time goes (worktree add/remove, checkout, clean,
status, add -A, commit ...). Both plait contenders' tasks have repositories of their own
(containment is the same): the pool's slots are recycled (`init` again, `reset --hard` of
the kept index: only the files that differ), the fresh ones made (`init`, `reset --hard`).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from bench.machine import describe
from bench.orchestration import FLOOR_SCRIPT, WRITE_FILE, check_result, plan_for
from bench.results import append_section
from bench.synthetic_repo import build

PLAIT = str(Path(sys.executable).with_name("plait"))

ADDS_SCRIPT = r"""
set -euo pipefail
repo=$1; root=$2; shift 2
cd "$repo"
for id in "$@"; do git worktree add --quiet -b "adds/$id" "$root/$id" main; done
"""

TIMING_GIT = r"""#!/bin/bash
start=$(date +%s%N)
"$REAL_GIT" "$@"
code=$?
args=("$@")
i=0
while [ "${args[$i]:-}" = "-c" ] || [ "${args[$i]:-}" = "-C" ]; do i=$((i + 2)); done
sub="${args[$i]:-?}"
if [ "$sub" = worktree ]; then sub="worktree-${args[$((i + 1))]:-?}"; fi
echo "$sub $(( ($(date +%s%N) - start) / 1000000 ))" >> "$GIT_LOG"
exit $code
"""


def ids(prefix: str, count: int) -> list[str]:
    return [f"{prefix}t{i}" for i in range(count)]


def run_adds(repo: Path, root: Path, task_ids: list[str]) -> float:
    root.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    subprocess.run(["bash", "-c", ADDS_SCRIPT, "adds", str(repo), str(root), *task_ids], check=True)
    elapsed = time.perf_counter() - started
    for task_id in task_ids:
        subprocess.run(
            ["git", "-C", str(repo), "worktree", "remove", "--force", str(root / task_id)]
        )
        subprocess.run(["git", "-C", str(repo), "branch", "--quiet", "-D", f"adds/{task_id}"])
    return elapsed


def run_floor(repo: Path, root: Path, task_ids: list[str], concurrency: int) -> float:
    argv = ["bash", "-c", FLOOR_SCRIPT, "floor", str(repo), str(root), str(concurrency)]
    argv.append(",".join(task_ids))
    started = time.perf_counter()
    subprocess.run(argv, check=True, env={**os.environ, "TASK_COMMAND": 'echo "$1" > "$1".txt'})
    elapsed = time.perf_counter() - started
    check_result(repo, [task_ids])
    return elapsed


def run_plait(
    repo: Path, work: Path, root: Path, task_ids: list[str], concurrency: int, *, pooled: bool
) -> float:
    plan_file = work / f"plan-{task_ids[0]}.json"
    plan_file.write_text(json.dumps(plan_for([task_ids], concurrency, WRITE_FILE).to_dict()))
    argv = [PLAIT, "run", str(plan_file), "--repo", str(repo), "--worktree-root", str(root)]
    argv += ["--db", f"sqlite:///{work / 'plait.db'}"] + ([] if pooled else ["--fresh-worktrees"])
    started = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    elapsed = time.perf_counter() - started
    check_result(repo, [task_ids])
    return elapsed


def git_times(work: Path, run: object) -> dict[str, tuple[int, int]]:
    """{subcommand: (count, total ms)} of the git processes `run()` starts."""
    bin_dir = work / "timing-bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "git").write_text(TIMING_GIT)
    (bin_dir / "git").chmod(0o755)
    log = work / "git-times.log"
    log.write_text("")
    saved = dict(os.environ)
    real = shutil.which("git") or "git"
    os.environ.update(PATH=f"{bin_dir}:{saved['PATH']}", GIT_LOG=str(log), REAL_GIT=real)
    try:
        assert callable(run)
        run()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for line in log.read_text().splitlines():
        sub, _, ms = line.rpartition(" ")
        totals[sub][0] += 1
        totals[sub][1] += int(ms)
    return {k: (v[0], v[1]) for k, v in sorted(totals.items(), key=lambda kv: -kv[1][1])}


def spread(values: list[float]) -> str:
    if not values:
        return "-"
    low, mid, high = min(values), statistics.median(values), max(values)
    return f"{mid:,.1f} ({low:,.1f}-{high:,.1f})" if len(values) > 1 else f"{mid:,.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--files", type=int, default=20_000)
    parser.add_argument("--tasks", type=int, default=6)
    parser.add_argument("--concurrency", type=int, default=3)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--no-profile", action="store_true")
    parser.add_argument("--no-record", action="store_true", help="print only")
    args = parser.parse_args()
    print(describe(), flush=True)
    names = ["adds", "floor", "plait run --fresh-worktrees", "plait run"]
    times: dict[str, list[float]] = {n: [] for n in names}
    pooled_cold: list[float] = []
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="plait-bench-big-") as tmp:
        work = Path(tmp)
        started = time.perf_counter()
        repo = build(work / "repo", args.files, bases=1).path
        subprocess.run(["git", "-C", str(repo), "reset", "--quiet", "--hard"], check=True)
        print(f"repository of {args.files:,} files in {time.perf_counter() - started:.0f} s")
        pool_root = work / "pooled-root"
        for run in range(args.runs):
            for index, name in enumerate(names):
                task_ids = ids(f"r{run}c{index}", args.tasks)
                root = work / f"root-{run}-{index}"
                if name == "adds":
                    elapsed = run_adds(repo, root, task_ids)
                elif name == "floor":
                    elapsed = run_floor(repo, root, task_ids, args.concurrency)
                elif name == "plait run --fresh-worktrees":
                    elapsed = run_plait(repo, work, root, task_ids, args.concurrency, pooled=False)
                else:
                    elapsed = run_plait(
                        repo, work, pool_root, task_ids, args.concurrency, pooled=True
                    )
                (pooled_cold if name == "plait run" and run == 0 else times[name]).append(elapsed)
                print(f"run {run + 1}: {name} {elapsed:,.1f} s", flush=True)
                shutil.rmtree(root, ignore_errors=True)
        if not args.no_profile:
            for label, pooled, root in (
                ("plait run --fresh-worktrees", False, work / "profile-root"),
                ("plait run, pooled (warm)", True, pool_root),
            ):
                task_ids = ids(f"p{int(pooled)}", args.tasks)
                measured = git_times(
                    work,
                    lambda t=task_ids, r=root, p=pooled: run_plait(
                        repo, work, r, t, args.concurrency, pooled=p
                    ),
                )
                total = sum(ms for _, ms in measured.values())
                parts = ", ".join(f"{k} {n}x {ms / 1000:,.1f} s" for k, (n, ms) in measured.items())
                line = f"git time, {label}: {total / 1000:,.1f} s in all: {parts}"
                print(line, flush=True)
                notes.append(f"- {line}")
    adds = statistics.median(times["adds"])
    table = [
        "| contender | wall s | vs the adds | target |",
        "|---|---|---|---|",
        f"| {args.tasks} x `git worktree add` | {spread(times['adds'])} | 1 | |",
    ]
    rows = [
        ("floor (bash + git, same git work)", times["floor"]),
        ("plait run --fresh-worktrees", times[names[2]]),
        ("plait run (pooled, the default), no pool yet (round 1)", pooled_cold),
        ("plait run (pooled, the default), the pool a previous run left", times[names[3]]),
    ]
    for label, values in rows:
        ratio = f"{statistics.median(values) / adds:.2f}x" if values else "-"
        table.append(f"| {label} | {spread(values)} | {ratio} | |")
    print("\n".join(table), flush=True)
    notes.insert(
        0,
        f"{args.files:,}-file synthetic repository (checkout populated), one batch of "
        f"{args.tasks} trivial tasks at max_concurrency {args.concurrency}, {args.runs} rounds, "
        "contenders in turn on the same repository; each is a fresh process timed from spawn "
        "to exit; median (min-max) in seconds. Equal guarantees: both plait contenders check "
        "isolation and keep unlanded work, and give every task a repository of its own; a "
        "pooled slot is made anew and verified clean (`git status` empty, index flags "
        "checked) before each task.",
    )
    command = (
        f"python -m bench.worktrees_run --files {args.files} --tasks {args.tasks} "
        f"--concurrency {args.concurrency} --runs {args.runs}"
    )
    if args.no_record:
        print("\n".join(notes))
    else:
        append_section(
            "A run on a big repository: pooled task repositories (the default) and fresh ones",
            command,
            table,
            notes,
        )


if __name__ == "__main__":
    main()
