"""Orchestration overhead: plait against the bare git floor, side by side in one run.

    python -m bench.orchestration [--batches 5] [--per-batch 10] [--concurrency 3] [--runs 3]
                                  [--no-cli] [--profile] [--no-record]

The plan: `--batches` explicit batches of `--per-batch` trivial tasks (each `echo <id> >
<id>.txt`), at most `--concurrency` at once, no test command. Every run uses a fresh
repository (a few files, one commit on `main`) and, for plait, a fresh SQLite store.
Contenders, in an order that rotates from run to run:

- floor: bash doing the same git work with no orchestrator (FLOOR_SCRIPT below): per task
  `worktree add -b` (one at a time, as plait does: concurrent adds race on git's worktree
  admin files), then the task's command, `add -A` + `commit`, with the same parallelism;
  per batch a `merge-tree --write-tree` + `commit-tree` chain onto the tip, a compare-and-
  swap `update-ref`, `worktree remove` + `branch -D` of each task; at the end `merge
  --ff-only` of the result into the checkout;
- plait: the in-process application service (`Plait`: register_project, submit_plan,
  start_run, wait_run) on a fresh SQLite store; timed from start_run to the run's end;
- plait run: the `plait run` console script in a subprocess (adds interpreter start-up,
  imports, store creation and the terminal output).

Both leave the same result on `main`, which is checked. `--profile` adds one plait run under
pyinstrument (wall clock, async-aware) and one with every git invocation logged, and prints
where the time goes.
"""

from __future__ import annotations

import argparse
import asyncio
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
from typing import Any

from bench.machine import describe
from bench.results import append_section
from plait.domain.plan.model import Plan
from plait.domain.plan.parsing import plan_from_mapping
from plait.eventstore import SqlEventStore
from plait.execution.service import Plait
from plait.execution.settings import Settings

TARGET = 1.3  # plait wall time at most 1.3x the floor

# argv: repo, worktree root, parallelism, then one word per batch: task ids joined by ",".
FLOOR_SCRIPT = r"""
set -euo pipefail
repo=$1; wtroot=$2; par=$3; shift 3
cd "$repo"
git update-ref refs/heads/floor-result HEAD
tip=$(git rev-parse HEAD)
task() {
    set -euo pipefail
    local id=$1
    cd "$wtroot/$id"
    sh -c "$TASK_COMMAND" task "$id" </dev/null
    git add -A
    git commit --quiet -m "task $id"
}
export -f task
export wtroot
for batch in "$@"; do
    IFS=, read -r -a ids <<<"$batch"
    # Worktrees one at a time (concurrent `worktree add` races on git's admin files),
    # then the tasks and their commits in parallel.
    for id in "${ids[@]}"; do
        git worktree add --quiet -b "floor/$id" "$wtroot/$id" "$tip"
    done
    printf '%s\n' "${ids[@]}" | xargs -P "$par" -I{} bash -c 'task "$1"' task {}
    new=$tip
    for id in "${ids[@]}"; do
        tree=$(git merge-tree --write-tree "$new" "floor/$id")
        new=$(git commit-tree "$tree" -p "$new" -p "floor/$id" -m "merge $id")
    done
    git update-ref refs/heads/floor-result "$new" "$tip"
    tip=$new
    for id in "${ids[@]}"; do
        git worktree remove --force "$wtroot/$id"
        git branch --quiet -D "floor/$id"
    done
done
git merge --quiet --ff-only floor-result
git branch --quiet -D floor-result
"""

WRITE_FILE = "echo {id} > {id}.txt"  # a task's command; {id} is the task id


def make_repo(where: Path) -> Path:
    """A small repository with one commit on `main`."""
    repo = where / "repo"
    (repo / "src").mkdir(parents=True)
    for i in range(20):
        (repo / "src" / f"module{i}.py").write_text(f"VALUE = {i}\n")
    (repo / "README.md").write_text("bench\n")
    env = {**os.environ, "GIT_CONFIG_NOSYSTEM": "1"}
    for argv in (
        ["init", "--quiet", "-b", "main"],
        ["config", "user.name", "bench"],
        ["config", "user.email", "bench@example.invalid"],
        ["config", "commit.gpgsign", "false"],
        ["add", "-A"],
        ["commit", "--quiet", "-m", "base"],
    ):
        subprocess.run(["git", *argv], cwd=repo, check=True, env=env)
    return repo


def batches_of(count: int, per_batch: int) -> list[list[str]]:
    return [[f"b{b}t{t}" for t in range(per_batch)] for b in range(count)]


def plan_for(batches: list[list[str]], concurrency: int, command: str) -> Plan:
    tasks = [{"id": t, "run": command.replace("{id}", t)} for b in batches for t in b]
    data: dict[str, Any] = {"max_concurrency": concurrency, "retries": 0, "tasks": tasks}
    if len(batches) > 1:
        data["batches"] = [
            {"batch_id": i, "task_ids": b, "can_parallel": True}
            for i, b in enumerate(batches, start=1)
        ]
    return plan_from_mapping(data)


def run_floor(
    work: Path, batches: list[list[str]], concurrency: int, command: str = WRITE_FILE
) -> float:
    repo = make_repo(work)
    argv = ["bash", "-c", FLOOR_SCRIPT, "floor", str(repo), str(work / "wt"), str(concurrency)]
    argv += [",".join(b) for b in batches]
    started = time.perf_counter()
    shell_command = command.replace("{id}", '"$1"')
    subprocess.run(argv, check=True, env={**os.environ, "TASK_COMMAND": shell_command})
    elapsed = time.perf_counter() - started
    check_result(repo, batches)
    return elapsed


async def plait_run(work: Path, plan: Plan) -> tuple[float, float]:
    """(setup seconds: store, register, plan; run seconds: start_run to the run's end)."""
    repo = make_repo(work)
    started = time.perf_counter()
    store = await asyncio.to_thread(SqlEventStore, f"sqlite:///{work / 'plait.db'}")
    service = Plait(store, Settings(worktree_root=work / "wt", log_root=work / "logs"))
    try:
        await service.start()
        project = await service.register_project(str(repo))
        await service.submit_plan(project, plan, source="bench")
        ready = time.perf_counter()
        run_id = await service.start_run(project)
        result = await service.wait_run(run_id)
        done = time.perf_counter()
    finally:
        await service.close()
        store.close()
    if result.status != "landed":
        raise RuntimeError(f"plait run {result.run_id} ended {result.status}: {result.error}")
    check_result(repo, [list(b.task_ids) for b in plan.batches or ()] or [list(plan.task_ids)])
    return ready - started, done - ready


def run_plait(work: Path, plan: Plan) -> float:
    return asyncio.run(plait_run(work, plan))[1]


def run_cli(work: Path, plan: Plan) -> float:
    repo = make_repo(work)
    plan_file = work / "plan.json"
    plan_file.write_text(json.dumps(plan.to_dict()))
    plait = Path(sys.executable).with_name("plait")
    argv = [str(plait), "run", str(plan_file), "--repo", str(repo)]
    argv += ["--db", f"sqlite:///{work / 'cli.db'}"]
    started = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    elapsed = time.perf_counter() - started
    check_result(repo, [list(b.task_ids) for b in plan.batches or ()] or [list(plan.task_ids)])
    return elapsed


def check_result(repo: Path, batches: list[list[str]]) -> None:
    """Every task's file is on `main`, and the checkout is clean."""
    listed = subprocess.run(
        ["git", "ls-tree", "--name-only", "main"], cwd=repo, capture_output=True, text=True
    ).stdout.split()
    missing = [t for b in batches for t in b if f"{t}.txt" not in listed]
    if missing:
        raise RuntimeError(f"{repo}: not landed on main: {missing[:5]}")


def fresh(root: Path, name: str) -> Path:
    path = root / name
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


def ms(values: list[float]) -> str:
    low, mid, high = (v * 1000 for v in (min(values), statistics.median(values), max(values)))
    return f"{mid:,.0f} ({low:,.0f}-{high:,.0f})"


# -- profiling -------------------------------------------------------------------------------

GIT_LOGGER = r"""#!/bin/sh
printf '%s\n' "$1" >> "$GIT_LOG"
exec "$REAL_GIT" "$@"
"""


def git_counts(
    root: Path, batches: list[list[str]], concurrency: int
) -> tuple[Counter[str], Counter[str]]:
    """Git subcommands run by the floor and by plait, via a logging `git` first on PATH."""
    bin_dir = fresh(root, "gitlog-bin")
    (bin_dir / "git").write_text(GIT_LOGGER)
    (bin_dir / "git").chmod(0o755)
    real = shutil.which("git") or "git"
    counts: list[Counter[str]] = []
    saved = dict(os.environ)
    try:
        for name in ("floor", "plait"):
            log = root / f"{name}.gitlog"
            os.environ.update(PATH=f"{bin_dir}:{saved['PATH']}", GIT_LOG=str(log), REAL_GIT=real)
            work = fresh(root, f"count-{name}")
            if name == "floor":
                run_floor(work, batches, concurrency)
            else:
                run_plait(work, plan_for(batches, concurrency, WRITE_FILE))
            log.touch()
            words = log.read_text().split()
            # make_repo's six commands are not the contender's
            counts.append(Counter(words[6:]))
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return counts[0], counts[1]


def profile_plait(root: Path, plan: Plan) -> str:
    from pyinstrument import Profiler

    work = fresh(root, "profile")
    profiler = Profiler(async_mode="enabled", interval=0.001)
    with profiler:
        run_plait(work, plan)
    text: str = profiler.output_text(unicode=False, color=False, show_all=False)
    return text


# -- main ------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--batches", type=int, default=5)
    parser.add_argument("--per-batch", type=int, default=10)
    parser.add_argument("--concurrency", type=int, default=3)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-cli", action="store_true", help="leave `plait run` out")
    parser.add_argument("--profile", action="store_true", help="pyinstrument + git counts")
    parser.add_argument("--no-record", action="store_true", help="print only")
    args = parser.parse_args()
    print(describe(), flush=True)
    batches = batches_of(args.batches, args.per_batch)
    tasks = args.batches * args.per_batch
    plan = plan_for(batches, args.concurrency, WRITE_FILE)
    names = ["floor", "plait"] + ([] if args.no_cli else ["plait run"])
    times: dict[str, list[float]] = {n: [] for n in names}
    with tempfile.TemporaryDirectory(prefix="plait-bench-") as tmp:
        root = Path(tmp)
        for run in range(args.runs):
            order = names[run % len(names) :] + names[: run % len(names)]
            for name in order:
                work = fresh(root, f"{run}-{name.replace(' ', '-')}")
                if name == "floor":
                    elapsed = run_floor(work, batches, args.concurrency)
                elif name == "plait":
                    elapsed = run_plait(work, plan)
                else:
                    elapsed = run_cli(work, plan)
                times[name].append(elapsed)
                print(f"run {run + 1}: {name} {elapsed * 1000:,.0f} ms", flush=True)
                shutil.rmtree(work, ignore_errors=True)
        floor = times["floor"]
        table = [
            "| contender | wall ms | vs floor (median of per-run ratios) | "
            "overhead per task ms | target |",
            "|---|---|---|---|---|",
            f"| floor (bash + git) | {ms(floor)} | 1 | 0 | |",
        ]
        verdicts = {}
        for name in names[1:]:
            ratios = [t / f for t, f in zip(times[name], floor, strict=True)]
            extra = [(t - f) * 1000 / tasks for t, f in zip(times[name], floor, strict=True)]
            ratio = statistics.median(ratios)
            verdict = "met" if ratio <= TARGET else "MISSED"
            verdicts[name] = verdict
            target = f"<= {TARGET}x ({verdict})" if name == "plait" else "(for reference)"
            table.append(
                f"| {name} | {ms(times[name])} | {ratio:.2f}x ({min(ratios):.2f}-"
                f"{max(ratios):.2f}) | {statistics.median(extra):,.0f} "
                f"({min(extra):,.0f}-{max(extra):,.0f}) | {target} |"
            )
        print("\n".join(table), flush=True)
        notes = [
            f"{tasks} trivial tasks in {args.batches} batches of {args.per_batch}, "
            f"max_concurrency {args.concurrency}, no test command; {args.runs} runs, contenders "
            "rotating; median (min-max). plait: in-process service, start_run to the run's "
            "end, fresh SQLite store; `plait run` is the whole CLI process.",
        ]
        if args.profile:
            floor_git, plait_git = git_counts(root, batches, args.concurrency)
            line = (
                f"git processes: floor {sum(floor_git.values())} "
                f"({sum(floor_git.values()) / tasks:.1f} per task), plait "
                f"{sum(plait_git.values())} ({sum(plait_git.values()) / tasks:.1f} per task)"
            )
            print(line)
            print("floor:", dict(floor_git.most_common()))
            print("plait:", dict(plait_git.most_common()))
            notes.append(f"- {line}; plait's by subcommand: {dict(plait_git.most_common(12))}.")
            print(profile_plait(root, plan))
    command = (
        f"python -m bench.orchestration --batches {args.batches} --per-batch {args.per_batch} "
        f"--concurrency {args.concurrency} --runs {args.runs}"
    )
    if args.no_record:
        print("\n".join([*table, "", *notes]))
    else:
        print(append_section("Orchestration overhead vs the git floor", command, table, notes))


if __name__ == "__main__":
    main()
