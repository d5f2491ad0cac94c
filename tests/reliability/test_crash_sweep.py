"""Every crash window resumes: a real `plait run` SIGKILLed right after an append to its run
stream (an event boundary), then `plait resume` once, ends with every task landed exactly
once, `git fsck` and `plait verify` clean, and no worktree or task branch left behind.

The crash point is a test-only `sitecustomize` (tests/reliability/crashpoint) put on the
subprocess's PYTHONPATH: plait itself has no hook. A representative run (two parallel
tasks, a dependent one, a test command) is counted once; the sweep then kills it at every
one of its boundaries on SQLite (27 crash points), and on PostgreSQL at those right after
each BatchLanded and a seeded half of the rest.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from plait.domain.run import replay
from plait.eventstore import SqlEventStore
from plait.projections.codec import decode, run_stream

pytestmark = pytest.mark.slow

PLAIT = str(Path(sys.executable).with_name("plait"))
HOOK = Path(__file__).with_name("crashpoint")
TIMEOUT = 120


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, check=True, capture_output=True, text=True
    ).stdout


def make_repo(root: Path, schedule: str = "batch") -> tuple[Path, Path]:
    repo = root / "repo"
    repo.mkdir(parents=True)
    (repo / "w.py").write_text(
        "import sys\nopen(sys.argv[1] + '.txt', 'w').write(sys.argv[1] + '\\n')\n"
    )
    (repo / "check.py").write_text(
        "from pathlib import Path\n"
        "for name in Path('.').glob('*.txt'):\n"
        "    assert name.read_text().strip() == name.stem, name\n"
    )
    git(repo, "init", "-q", "-b", "main")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "add", "-A")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "base")
    python = sys.executable

    def task(task_id: str, depends_on: list[str] | None = None) -> dict[str, object]:
        return {"id": task_id, "run": f"{python} w.py {task_id}", "depends_on": depends_on or []}

    plan = {
        "max_concurrency": 2,
        "schedule": schedule,
        "test_command": f"{python} check.py",
        "tasks": [task("a"), task("b"), task("c", ["a"])],
    }
    plan_path = root / "plan.yaml"
    plan_path.write_text(yaml.safe_dump(plan))
    return repo, plan_path


def plait(root: Path, *args: str, crash_at: int = 0, appends: Path | None = None) -> int:
    env = {
        **os.environ,
        "XDG_DATA_HOME": str(root / "data"),
        "PYTHONPATH": os.pathsep.join([str(HOOK), os.environ.get("PYTHONPATH", "")]),
        "PLAIT_TEST_CRASH_AT": str(crash_at or ""),
        "PLAIT_TEST_APPENDS_FILE": str(appends or ""),
    }
    done = subprocess.run(
        [PLAIT, *args],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        start_new_session=True,
    )
    if done.returncode not in (0, -9):
        print(done.stdout, done.stderr)
    return done.returncode


def run_id_in(url: str, repo: Path) -> str:
    """The run started on `repo` (each case has a repository, so a project, of its own)."""
    store = SqlEventStore(url)
    try:
        created = [
            e
            for e in store.read_all(0, 100_000)
            if e.type == "RunCreated" and Path(e.data["repo_path"]).resolve() == repo.resolve()
        ]
        assert len(created) == 1
        return str(created[0].data["run_id"])
    finally:
        store.close()


def boundaries(tmp_path: Path, url: str, schedule: str) -> list[str]:
    """The appends of one uninterrupted run, in order (each line: its event types)."""
    root, appends = tmp_path / "count", tmp_path / "appends.txt"
    repo, plan = make_repo(root, schedule)
    assert plait(root, "run", str(plan), "--repo", str(repo), "--db", url, appends=appends) == 0
    return appends.read_text().splitlines()


def assert_run_finished_cleanly(root: Path, repo: Path, url: str, run_id: str) -> None:
    store = SqlEventStore(url)
    try:
        stored = store.read_stream(run_stream(run_id))
    finally:
        store.close()
    types = [e.type for e in stored]
    assert types[-1] == "RunCompleted", types
    state = replay(decode(e) for e in stored)
    assert state.status == "landed"
    assert {b.status for b in state.batches.values()} == {"completed"}, "a batch left landed"
    merges = git(repo, "log", "--format=%s", "main").splitlines()
    for task in "abc":
        assert merges.count(f"plait: merge task {task}") == 1, merges
    assert {p.name for p in repo.glob("*.txt")} == {"a.txt", "b.txt", "c.txt"}
    git(repo, "fsck", "--strict", "--no-dangling")
    worktrees = git(repo, "worktree", "list", "--porcelain")
    assert worktrees.count("worktree ") == 1, f"stray worktrees: {worktrees}"
    branches = git(repo, "branch", "--list", "plait/*")
    assert branches == "", f"stray branches: {branches}"


@pytest.mark.parametrize("schedule", ["batch", "ready"])
def test_a_run_killed_at_any_event_boundary_resumes_once_and_lands_every_task_once(
    store_url: str, tmp_path: Path, schedule: str
) -> None:
    first = boundaries(tmp_path, store_url, schedule)
    assert any("BatchLanded" in a for a in first)
    assert first[-1].startswith("RunCompleted")
    failures = []
    # The last append ends the run: nothing to resume. PLAIT_SWEEP_AT="3,14" picks some.
    picked = os.environ.get("PLAIT_SWEEP_AT")
    chosen = [int(n) for n in picked.split(",")] if picked else cases(first, store_url)
    for n in chosen:
        root = tmp_path / f"crash-{n}"
        repo, plan = make_repo(root, schedule)
        killed = plait(root, "run", str(plan), "--repo", str(repo), "--db", store_url, crash_at=n)
        assert killed == -9, f"boundary {n} ({first[n - 1]}): the run was not killed"
        run_id = run_id_in(store_url, repo)
        code = plait(root, "resume", run_id, "--db", store_url)
        try:
            assert code == 0, f"resume exited {code}"
            assert_run_finished_cleanly(root, repo, store_url, run_id)
        except AssertionError as exc:
            failures.append(f"killed after append {n} ({first[n - 1]}): {str(exc)[:300]}")
    assert failures == [], "\n".join(failures)
    # Every case's history at once: the hash chain intact, every run replays cleanly.
    assert plait(tmp_path, "verify", "--db", store_url) == 0


def cases(appends: list[str], url: str) -> list[int]:
    """Every boundary on SQLite; on PostgreSQL (the same engine over another store), every
    boundary right after a BatchLanded and a seeded half of the rest, to stay within a few
    minutes for both."""
    every = list(range(1, len(appends)))
    if not url.startswith("postgresql"):
        return every
    landed = {n for n in every if "BatchLanded" in appends[n - 1]}
    rest = [n for n in every if n not in landed]
    return sorted(landed | set(random.Random(len(appends)).sample(rest, len(rest) // 2)))
