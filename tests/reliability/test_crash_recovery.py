"""A plait process killed with SIGKILL mid-batch loses nothing: the next start resumes the run.

These tests run the real `plait run` in a subprocess, kill it while its tasks are running,
and then start a new service on the same database.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from plait.eventstore import SqlEventStore
from plait.execution.service import Plait
from plait.execution.settings import Settings
from plait.projections.codec import run_stream

PLAIT = str(Path(sys.executable).with_name("plait"))

# Each task records its pid, then waits until the test releases it (bounded, never forever).
TASK = textwrap.dedent(
    """\
    import os, sys, time
    from pathlib import Path
    task, gate = sys.argv[1], Path(sys.argv[2])
    Path(f"{task}.draft").write_text("draft\\n")  # uncommitted when the kill comes
    (gate / f"{task}.{os.getpid()}.started").write_text("")
    deadline = time.monotonic() + 120
    while not (gate / "release").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    Path(f"{task}.txt").write_text(task + "\\n")
    """
)


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, check=True, capture_output=True, text=True
    ).stdout


@pytest.fixture
def repo_and_plan(tmp_path: Path) -> tuple[Path, Path, Path]:
    repo, gate = tmp_path / "repo", tmp_path / "gate"
    repo.mkdir()
    gate.mkdir()
    (repo / "task.py").write_text(TASK)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "add", "-A")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "base")
    python = sys.executable

    def task(task_id: str, depends_on: list[str] | None = None) -> dict[str, object]:
        run = f"{python} task.py {task_id} {gate}"
        return {"id": task_id, "run": run, "depends_on": depends_on or []}

    plan = {
        "max_concurrency": 3,
        "tasks": [task("a"), task("b"), task("c"), task("d", ["a", "b", "c"])],
    }
    plan_path = tmp_path / "plan.yaml"
    plan_path.write_text(yaml.safe_dump(plan))
    return repo, plan_path, gate


def started_pids(gate: Path) -> dict[str, int]:
    return {p.name.split(".")[0]: int(p.name.split(".")[1]) for p in gate.glob("*.started")}


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.fixture(params=[False, True], ids=["fresh-worktrees", "pooled-worktrees"])
def reuse(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


@pytest.fixture
def killed_mid_batch(
    repo_and_plan: tuple[Path, Path, Path], store_url: str, tmp_path: Path, reuse: bool
) -> Iterator[tuple[str, Path, Path, dict[str, int]]]:
    """`plait run` started, all of batch 1 running, then the plait process SIGKILLed."""
    repo, plan, gate = repo_and_plan
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path / "data")}
    pooled = [] if reuse else ["--fresh-worktrees"]  # pooled: the default
    proc = subprocess.Popen(
        [PLAIT, "run", str(plan), "--repo", str(repo), "--db", store_url, "--json", *pooled],
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        env=env,
        text=True,
        start_new_session=True,
    )
    assert proc.stdout is not None
    run_id, running = None, set()
    for line in proc.stdout:  # event-driven: wait until every task of batch 1 started
        event = json.loads(line)
        run_id = event.get("run_id", run_id)
        if event["type"] == "TaskStarted":
            running.add(event["task_id"])
        if running == {"a", "b", "c"}:
            break
    assert run_id is not None
    while len(started_pids(gate)) < 3:  # the task processes themselves are up
        pass
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    try:
        yield run_id, repo, gate, started_pids(gate)
    finally:
        (gate / "release").write_text("")


async def test_a_run_killed_mid_batch_is_resumed_and_every_task_lands_exactly_once(
    killed_mid_batch: tuple[str, Path, Path, dict[str, int]],
    store_url: str,
    tmp_path: Path,
    reuse: bool,
) -> None:
    run_id, repo, gate, orphans = killed_mid_batch
    deadline = time.monotonic() + 30
    while any(alive(pid) for pid in orphans.values()) and time.monotonic() < deadline:
        time.sleep(0.05)  # the reaper kills them as the kernel reports plait's death
    assert not any(alive(pid) for pid in orphans.values()), "tasks died with their plait"
    store = SqlEventStore(store_url)
    service = Plait(store, Settings(log_root=tmp_path / "logs", reuse_worktrees=reuse))
    try:
        (gate / "release").write_text("")  # re-run tasks may finish at once
        resumed = await service.start()
        assert resumed == [run_id]
        assert not any(alive(pid) for pid in orphans.values()), "orphans were killed"
        result = await service.wait_run(run_id)
        assert result.status == "landed"
        events = store.read_stream(run_stream(run_id))
        types = [e.type for e in events]
        assert types.count("TaskInterrupted") == 3
        assert types.count("RunResumed") == 1
        # The killed attempts' uncommitted work was committed before their worktrees went.
        kept = {e.data["ref"] for e in events if e.type == "WorkKept"}
        assert kept == {f"refs/plait/kept/{run_id}/{t}/1" for t in "abc"}
    finally:
        await service.close()
        store.close()
    merges = git(repo, "log", "--format=%s", "main").splitlines()
    for task in "abcd":
        assert merges.count(f"plait: merge task {task}") == 1
        assert (repo / f"{task}.txt").read_text() == f"{task}\n"
    for task in "abc":
        assert git(repo, "show", f"refs/plait/kept/{run_id}/{task}/1:{task}.draft") == "draft\n"
    assert git(repo, "worktree", "list", "--porcelain").count("worktree ") == 1
    assert git(repo, "branch", "--list", "plait/*") == ""
    assert git(repo, "status", "--porcelain") == ""


async def test_a_second_service_does_not_drive_a_run_another_live_process_holds(
    killed_mid_batch: tuple[str, Path, Path, dict[str, int]], store_url: str, tmp_path: Path
) -> None:
    run_id, _repo, gate, _orphans = killed_mid_batch
    store = SqlEventStore(store_url)
    first = Plait(store, Settings(log_root=tmp_path / "logs1"))
    second = Plait(store, Settings(log_root=tmp_path / "logs2"))
    try:
        assert await first.start() == [run_id]
        assert await second.start() == []
        (gate / "release").write_text("")
        assert (await first.wait_run(run_id)).status == "landed"
    finally:
        await first.close()
        await second.close()
        store.close()


async def test_the_first_resume_after_a_crash_succeeds_though_start_up_recovered_the_run(
    killed_mid_batch: tuple[str, Path, Path, dict[str, int]], store_url: str, tmp_path: Path
) -> None:
    """`plait resume RUN` starts a service (which resumes the crashed run), then asks for
    the resume: that is the same resume, not a run "already running in this process"."""
    run_id, _repo, gate, _orphans = killed_mid_batch
    store = SqlEventStore(store_url)
    service = Plait(store, Settings(log_root=tmp_path / "logs"))
    try:
        assert await service.start() == [run_id]
        project_id = service.project_of_run(run_id)
        assert project_id is not None
        assert await service.resume_run(project_id, run_id) == run_id
        (gate / "release").write_text("")
        assert (await service.wait_run(run_id)).status == "landed"
        types = [e.type for e in store.read_stream(run_stream(run_id))]
        assert types.count("RunResumed") == 1
    finally:
        await service.close()
        store.close()


async def test_the_first_resume_after_a_crash_succeeds_though_start_up_already_landed_the_run(
    killed_mid_batch: tuple[str, Path, Path, dict[str, int]], store_url: str, tmp_path: Path
) -> None:
    """The same, when the recovered run has ended before the resume is asked for (killed
    one event before its end, it lands at once): not "run ... is landed", exit 2."""
    run_id, _repo, gate, _orphans = killed_mid_batch
    (gate / "release").write_text("")
    store = SqlEventStore(store_url)
    service = Plait(store, Settings(log_root=tmp_path / "logs"))
    try:
        assert await service.start() == [run_id]
        assert (await service.wait_run(run_id)).status == "landed"
        project_id = service.project_of_run(run_id)
        assert project_id is not None
        assert await service.resume_run(project_id, run_id) == run_id
        assert (await service.wait_run(run_id)).status == "landed"
        types = [e.type for e in store.read_stream(run_stream(run_id))]
        assert types.count("RunResumed") == 1
        assert types.count("RunCompleted") == 1
    finally:
        await service.close()
        store.close()


async def test_an_attempt_that_finished_before_its_driver_died_is_adopted_not_run_again(
    killed_mid_batch: tuple[str, Path, Path, dict[str, int]],
    store_url: str,
    tmp_path: Path,
    reuse: bool,
) -> None:
    run_id, repo, gate, _orphans = killed_mid_batch
    store = SqlEventStore(store_url)
    # Task a's attempt got as far as plait's commit of its work on its branch; the driver
    # died before it could record TaskSucceeded (the window is milliseconds wide: the test
    # makes that commit itself, as plait's commit_work would, with plait's subject).
    [created] = [
        e
        for e in store.read_stream(run_stream(run_id))
        if e.type == "WorktreeCreated" and e.data["task_id"] == "a"
    ]
    worktree = Path(created.data["path"])
    (worktree / "a.txt").write_text("a\n")
    git(worktree, "add", "-A")
    git(worktree, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "plait: a")
    finished = git(worktree, "rev-parse", "HEAD").strip()
    if (worktree / ".git").is_dir():  # a task repository of its own: plait fetches the commit
        git(repo, "fetch", "--quiet", "--no-write-fetch-head", str(worktree), "HEAD")
        git(repo, "update-ref", f"refs/heads/plait/{run_id}/a", finished)
    service = Plait(store, Settings(log_root=tmp_path / "logs", reuse_worktrees=reuse))
    try:
        (gate / "release").write_text("")
        assert await service.start() == [run_id]
        result = await service.wait_run(run_id)
        events = store.read_stream(run_stream(run_id))
    finally:
        await service.close()
        store.close()
    assert result.status == "landed"
    of_a = [e for e in events if e.data.get("task_id") == "a"]
    assert [e.type for e in of_a].count("TaskStarted") == 1  # never run again
    [succeeded] = [e for e in of_a if e.type == "TaskSucceeded"]
    assert succeeded.data["commit"] == finished
    assert succeeded.data["changed_files"] == ["a.draft", "a.txt"]
    assert [e.type for e in events].count("TaskInterrupted") == 2  # b and c run again
    merges = git(repo, "log", "--format=%s", "main").splitlines()
    for task in "abcd":
        assert merges.count(f"plait: merge task {task}") == 1
