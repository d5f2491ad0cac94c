"""Worktree cost as the repository grows: plain `git worktree add` against plait's pool.

    python -m bench.worktrees [--files 1000,10000,50000] [--runs 5] [--no-record]
    python -m bench.worktrees --containment [--files 1000,20000] [--runs 3]

For each size, a synthetic repository (bench/synthetic_repo.py) is generated in a temporary
directory, then every run, side by side (the order alternates between runs):
- plain: `git worktree add -B <branch> <path> <base>` of a fresh worktree, the task's
  commit, `merge-tree --write-tree`, `commit-tree`, `update-ref`, `git worktree remove`;
- plait: `WorktreePool.acquire` of a reused worktree moved to the run's new base (a commit
  that changed 7 files; the previous task's 3 changed files are undone too), the same git
  steps, `WorktreePool.release`;
- sparse (the task declares one of the ten top-level directories): a fresh sparse
  worktree from an empty pool, and a reused one.
Figures are milliseconds, median (min-max) over the runs; ratios are computed per run.

--containment: one task's whole git cycle (prepare, the task's edits, plait's commit of them
onto the task branch in the user's repository, put away), side by side:
- linked: `git worktree add -B`, `add -A` + `commit`, `worktree remove` (plait before issue 14);
- own repository: WorktreeManager.create / save / remove (`git init` reading the user's
  objects by alternates, `reset --hard`; commit-tree, fetch, update-ref; rmtree);
- shared clone: `git clone --shared --no-checkout`, `checkout -B`, `add -A` + `commit`,
  fetch into the user's repository, rmtree (the other way to a repository of its own).
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import tempfile
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import TypeVar

from bench.machine import describe
from bench.results import append_section
from bench.synthetic_repo import SyntheticRepo, build, task_files
from plait.execution.git.cli import Git
from plait.execution.worktrees.manager import Worktree, WorktreeManager
from plait.execution.worktrees.pool import WorktreePool

TARGET = 0.10  # preparing a task's worktree: at most 10% of a plain `git worktree add`
SPARSE = ["src0"]  # one of the ten top-level directories
T = TypeVar("T")
Timings = dict[str, list[float]]


async def timed(into: list[float], action: Awaitable[T]) -> T:
    start = time.perf_counter()
    result = await action
    into.append((time.perf_counter() - start) * 1000)
    return result


class Bench:
    """One synthetic repository; each `*_task` call runs one task's git steps and times them."""

    def __init__(self, repo: SyntheticRepo) -> None:
        self.repo = repo
        self.git = Git(repo.path)
        self.manager = WorktreeManager(self.git)
        self.pool = WorktreePool(self.manager, max_idle=1)
        self.sparse_pool = WorktreePool(self.manager, max_idle=1)
        self.fresh_sparse_pool = WorktreePool(self.manager, max_idle=0)
        self.integration = "refs/heads/bench/integration"

    async def floor(self, t: Timings, worktree: Worktree, run: int, *, linked: bool) -> None:
        """A task's own edits, then the git steps every task costs: commit, merge, land.
        (plait commits only in a repository of the task's own: a linked worktree's commit is
        plain git's `add -A` and `commit`.)"""
        for name in task_files(self.repo, run):
            (worktree.path / name).parent.mkdir(parents=True, exist_ok=True)
            (worktree.path / name).write_text(f"task {run}\n")
        (worktree.path / f"task-{run}.txt").write_text("new file\n")
        commit = await timed(
            t["commit"],
            self._plain_commit(worktree, run)
            if linked
            else self.manager.commit_all(worktree, f"task {run}"),
        )
        assert commit is not None
        tip = worktree.base_commit
        await self.git.run("update-ref", self.integration, tip)
        merged = await timed(
            t["merge-tree"], self.git.run("merge-tree", "--write-tree", tip, commit)
        )
        tree = merged.stdout.split()[0]
        argv = ("commit-tree", tree, "-p", tip, "-p", commit, "-m", "merge")
        new = (await timed(t["commit-tree"], self.git.run(*argv))).stdout.strip()
        await timed(t["update-ref"], self.git.run("update-ref", self.integration, new, tip))

    async def _plain_commit(self, worktree: Worktree, run: int) -> str:
        await self.git.run("add", "-A", cwd=worktree.path)
        argv = ("-c", "commit.gpgsign=false", "commit", "--quiet", "--no-verify", "-m")
        await self.git.run(*argv, f"task {run}", cwd=worktree.path)
        return (await self.git.run("rev-parse", "HEAD", cwd=worktree.path)).stdout.strip()

    async def plain_task(self, t: Timings, run: int, base: str) -> None:
        path = self.repo.path.parent / f"plain-{run}"
        branch = f"bench/plain-{run}"
        await timed(
            t["add"], self.git.run("worktree", "add", "--quiet", "-B", branch, str(path), base)
        )
        await self.floor(t, Worktree(path, branch, path.name, base), run, linked=True)
        await timed(t["remove"], self.git.run("worktree", "remove", "--force", str(path)))
        await self.git.run("branch", "--quiet", "-D", branch)

    async def pooled_task(self, t: Timings, run: int, base: str) -> None:
        wt = await timed(t["acquire"], self.pool.acquire("bench", f"pooled-{run}", 1, base))
        await self.floor(t, wt, run, linked=False)
        await timed(t["release"], self.pool.release(wt))

    async def sparse_tasks(self, t: Timings, run: int, base: str) -> None:
        for pool, key, task in (
            (self.fresh_sparse_pool, "sparse new", f"fresh-sparse-{run}"),
            (self.sparse_pool, "sparse", f"sparse-{run}"),
        ):
            acquire = pool.acquire("bench", task, 1, base, sparse_paths=SPARSE)
            await pool.release(await timed(t[key], acquire))

    async def warm_up(self, t: Timings) -> None:
        """Fill both pools: the first acquire of each creates its worktree."""
        base = self.repo.base_commits[0]
        await self.pool.release(
            await timed(t["first acquire"], self.pool.acquire("bench", "warm", 1, base))
        )
        await self.sparse_pool.release(
            await self.sparse_pool.acquire("bench", "warm-s", 1, base, sparse_paths=SPARSE)
        )

    async def close(self) -> None:
        await self.pool.drain()
        await self.sparse_pool.drain()


async def measure(repo: SyntheticRepo, runs: int) -> Timings:
    bench = Bench(repo)
    t: Timings = {}
    keys = "add remove acquire release commit merge-tree commit-tree update-ref sparse"
    for key in [*keys.split(), "sparse new", "first acquire"]:
        t[key] = []
    await bench.warm_up(t)
    for run in range(runs):
        base = repo.base_commits[run + 1]
        tasks = [bench.plain_task, bench.pooled_task]
        for task in tasks if run % 2 == 0 else reversed(tasks):
            await task(t, run, base)
        await bench.sparse_tasks(t, run, base)
    await bench.close()
    return t


def ms(values: list[float]) -> str:
    return f"{statistics.median(values):,.0f} ({min(values):,.0f}-{max(values):,.0f})"


def ratio(mine: list[float], plain: list[float]) -> tuple[float, str]:
    per_run = [m / p for m, p in zip(mine, plain, strict=True)]
    median = statistics.median(per_run)
    return median, f"{median:.1%} ({min(per_run):.1%}-{max(per_run):.1%})"


def rows(files: int, t: Timings) -> list[str]:
    n = len(t["add"])
    floor_steps = ("commit", "merge-tree", "commit-tree", "update-ref")
    shared = [sum(t[s][i] for s in floor_steps) for i in range(n)]
    sums = {
        "plain cycle": [t["add"][i] + t["remove"][i] for i in range(n)],
        "pool cycle": [t["acquire"][i] + t["release"][i] for i in range(n)],
    }
    sums["plain floor"] = [c + s for c, s in zip(sums["plain cycle"], shared, strict=True)]
    sums["pool floor"] = [c + s for c, s in zip(sums["pool cycle"], shared, strict=True)]
    prepared = ratio(t["acquire"], t["add"])[0]
    verdict = "met" if prepared <= TARGET else "MISSED"
    table = [
        (
            "prepare a task's worktree (reused, new base)",
            t["add"],
            t["acquire"],
            f"<= {TARGET:.0%} ({verdict})",
        ),
        (
            "prepare + put away (add+remove / acquire+release)",
            sums["plain cycle"],
            sums["pool cycle"],
            "-",
        ),
        (
            "git floor per task (+ commit, merge-tree, commit-tree, update-ref)",
            sums["plain floor"],
            sums["pool floor"],
            "-",
        ),
        (f"sparse ({SPARSE[0]}/, 1 of 10 top dirs), new worktree", t["add"], t["sparse new"], "-"),
        (f"sparse ({SPARSE[0]}/), reused worktree", t["add"], t["sparse"], "-"),
    ]
    lines = [
        f"| {files:,} | {label} | {ms(plain)} | {ms(mine)} | {ratio(mine, plain)[1]} | {target} |"
        for label, plain, mine, target in table
    ]
    first = t["first acquire"][0]
    lines.append(
        f"| {files:,} | first pooled acquire (creates the worktree) | {ms(t['add'])} "
        f"| {first:,.0f} | {first / statistics.median(t['add']):.0%} | - |"
    )
    return lines


def step_note(files: int, t: Timings) -> str:
    steps = (
        "add",
        "acquire",
        "commit",
        "merge-tree",
        "commit-tree",
        "update-ref",
        "remove",
        "release",
    )
    return f"- {files:,} files, medians (ms): " + ", ".join(
        f"{s} {statistics.median(t[s]):,.0f}" for s in steps
    )


async def contained(repo: SyntheticRepo, runs: int) -> Timings:
    """The three ways to give a task its git state, each run in turn (order alternating)."""
    git = Git(repo.path)
    manager = WorktreeManager(git, repo.path.parent / "roots")
    t: Timings = {"linked": [], "own repository": [], "shared clone": []}
    base = repo.base_commits[0]

    def edit(path: Path, run: int) -> None:
        for name in task_files(repo, run):
            (path / name).parent.mkdir(parents=True, exist_ok=True)
            (path / name).write_text(f"task {run}\n")

    async def linked(run: int) -> None:
        path, branch = repo.path.parent / f"linked-{run}", f"bench/linked-{run}"
        await git.run("worktree", "add", "--quiet", "-B", branch, str(path), base)
        edit(path, run)
        await git.run("add", "-A", cwd=path)
        await git.run("commit", "--quiet", "--no-verify", "-m", "task", cwd=path)
        await git.run("worktree", "remove", "--force", str(path))

    async def own(run: int) -> None:
        worktree = await manager.create("bench", f"own-{run}", 1, base)
        edit(worktree.path, run)
        assert (await manager.save(worktree, "task")).commit is not None
        await manager.remove(worktree)

    async def clone(run: int) -> None:
        path, branch = repo.path.parent / f"clone-{run}", f"bench/clone-{run}"
        await git.run("clone", "--quiet", "--shared", "--no-checkout", str(repo.path), str(path))
        await git.run("checkout", "--quiet", "-B", branch, base, cwd=path)
        edit(path, run)
        await git.run("add", "-A", cwd=path)
        await git.run("commit", "--quiet", "--no-verify", "-m", "task", cwd=path)
        await git.run("fetch", "--quiet", str(path), f"{branch}:refs/heads/{branch}")
        await asyncio.to_thread(shutil.rmtree, path)

    ways = [("linked", linked), ("own repository", own), ("shared clone", clone)]
    for run in range(runs):
        for name, way in ways if run % 2 == 0 else reversed(ways):
            started = time.perf_counter()
            await way(run)
            t[name].append((time.perf_counter() - started) * 1000)
    return t


def containment(args: argparse.Namespace) -> None:
    table = [
        "| files | linked worktree ms | own repository ms | own/linked | shared clone ms"
        " | clone/linked |",
        "|---|---|---|---|---|---|",
    ]
    for files in (int(f) for f in args.files.split(",")):
        with tempfile.TemporaryDirectory(prefix="plait-bench-") as tmp:
            repo = build(Path(tmp) / "repo", files, bases=1)
            t = asyncio.run(contained(repo, args.runs))
        own, cloned = ratio(t["own repository"], t["linked"]), ratio(t["shared clone"], t["linked"])
        row = (
            f"| {files:,} | {ms(t['linked'])} | {ms(t['own repository'])} | {own[1]}"
            f" | {ms(t['shared clone'])} | {cloned[1]} |"
        )
        table.append(row)
        print(row, flush=True)
    notes = [
        f"{args.runs} runs per size; one task's whole git cycle (prepare, 3 edited files,",
        "plait's commit onto the task branch in the user's repository, put away); the ratio",
        "column is per run (median, min-max).",
    ]
    if args.no_record:
        print("\n".join(notes))
    else:
        command = f"python -m bench.worktrees --containment --files {args.files} --runs {args.runs}"
        print(append_section("Worktrees: a repository of each task's own", command, table, notes))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", default="1000,10000,50000")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--no-record", action="store_true", help="print only, do not append")
    parser.add_argument("--containment", action="store_true", help="linked vs own repository")
    args = parser.parse_args()
    print(describe(), flush=True)
    if args.containment:
        containment(args)
        return
    table = [
        "| files | measure | plain git ms | plait ms | plait/plain per run | target |",
        "|---|---|---|---|---|---|",
    ]
    notes: list[str] = []
    for files in (int(f) for f in args.files.split(",")):
        with tempfile.TemporaryDirectory(prefix="plait-bench-") as tmp:
            started = time.perf_counter()
            repo = build(Path(tmp) / "repo", files, bases=args.runs + 1)
            built = time.perf_counter() - started
            t = asyncio.run(measure(repo, args.runs))
        new_rows = rows(files, t)
        table += new_rows
        print("\n".join(new_rows), flush=True)
        notes.append(step_note(files, t))
        notes.append(
            f"  checkout {repo.checkout_bytes / 1e6:,.0f} MB; generated in {built:.0f} s;"
            f" whole size took {time.perf_counter() - started:.0f} s"
        )
    notes = [
        f"{args.runs} runs per size, median (min-max) in ms; the ratio column is plait/plain",
        "computed per run (median, min-max). Each new base changes 7 files (5 modified, 1 added,",
        "1 deleted); each task edits 2 files and adds 1. The pooled worktree comes back with",
        "`git status --porcelain --ignored` empty and the index flags checked (isolation), and",
        "the plain worktree is created with `git worktree add -B` exactly as WorktreeManager does.",
        "Not measured: keep_ignored with a large node_modules/ (clean skips ignored directories),",
        "concurrent acquires, the user's checkout (left unpopulated).",
        *notes,
    ]
    if args.no_record:
        print("\n".join(notes))
    else:
        command = f"python -m bench.worktrees --files {args.files} --runs {args.runs}"
        print(append_section("Worktree cost as the repository grows", command, table, notes))


if __name__ == "__main__":
    main()
