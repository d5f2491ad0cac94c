"""Several real `plait serve` processes on one PostgreSQL, each in its own UTS and PID
namespace (`unshare -u -p -f --mount-proc`), as different hosts or containers would be.

Each server runs as PID 2 of its namespace (a shell is PID 1), so SIGKILLing it leaves the
namespace standing: what dies with it dies because plait made it so, not because the
namespace ended. Tasks are `task.py` (TASK below): each attempt holds an exclusive flock on
its task's lock file for its whole life, so an attempt that starts while another attempt of
the same task still runs, on any server, leaves an `.overlap` marker; and the test can
tell whether any attempt still runs by trying the lock itself.

Used by tests/reliability/test_several_servers.py and bench/takeover.py.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import yaml

from plait.eventstore import SqlEventStore, StoredEvent
from plait.projections.codec import project_stream, run_stream

PLAIT = str(Path(sys.executable).with_name("plait"))
TOKEN = "several-servers-token"
BOUND = 90.0  # seconds: the longest any wait here may take before the test fails
# Short leases, so takeovers take seconds (docs/reliability.md, "Several servers").
LEASES = {"PLAIT_LEASE_TTL": "4", "PLAIT_LEASE_RENEW_EVERY": "1", "PLAIT_TAKEOVER_EVERY": "0.5"}

# `plait serve`, which prints every asyncio task's stack to its log on SIGUSR2 (`stacks`).
SERVE = textwrap.dedent(
    """\
    import asyncio, signal, sys
    def show(*_):
        for task in asyncio.all_tasks(asyncio.get_running_loop()):
            task.print_stack(file=sys.stderr)
    signal.signal(signal.SIGUSR2, show)
    from plait.cli import main
    sys.exit(main(sys.argv[1:]))
    """
)

TASK = textwrap.dedent(
    """\
    import fcntl, os, sys, time
    from pathlib import Path
    task, gate = sys.argv[1], Path(sys.argv[2])
    lock = open(gate / f"{task}.lock", "a")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        (gate / f"{task}.overlap").write_text(os.uname().nodename)
        sys.exit(3)
    (gate / f"{task}.{time.time_ns()}.started").write_text(os.uname().nodename)
    deadline = time.monotonic() + 120
    released = (gate / "release", gate / f"{task}.release")
    while not any(p.exists() for p in released) and time.monotonic() < deadline:
        time.sleep(0.05)
    Path(f"{task}.txt").write_text(task + "\\n")
    """
)


def unshare_works() -> bool:
    if shutil.which("unshare") is None or os.geteuid() != 0:
        return False
    probe = subprocess.run(
        ["unshare", "-u", "-p", "-f", "--mount-proc", "true"], capture_output=True, timeout=30
    )
    return probe.returncode == 0


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, check=True, capture_output=True, text=True
    ).stdout


BATCHED_PLAN = {"a": [], "b": [], "c": [], "d": ["a", "b", "c"]}


def make_project(
    root: Path, schedule: str = "batch", depends: dict[str, list[str]] | None = None
) -> tuple[Path, Path, Path]:
    """A repository with task.py, a gate directory, and a plan: a, b, c at once, then d,
    in batches or (`schedule="ready"`) each as soon as what it depends on landed; `depends`
    gives other tasks and dependencies instead. Each task waits for `gate/release` or
    `gate/<task>.release`."""
    repo, gate = root / "repo", root / "gate"
    repo.mkdir()
    gate.mkdir()
    (repo / "task.py").write_text(TASK)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "add", "-A")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "base")
    python = sys.executable

    def task(task_id: str, depends_on: list[str] | None = None) -> dict[str, object]:
        return {
            "id": task_id,
            "run": f"{python} task.py {task_id} {gate}",
            "depends_on": depends_on or [],
        }

    plan = {
        "schedule": schedule,
        "max_concurrency": 3,
        "tasks": [task(task_id, after) for task_id, after in (depends or BATCHED_PLAN).items()],
    }
    plan_path = root / "plan.yaml"
    plan_path.write_text(yaml.safe_dump(plan))
    return repo, gate, plan_path


def wait_for(what: str, check: Callable[[], Any], bound: float = BOUND) -> Any:
    """`check()`'s first truthy value, polled until `bound` seconds have passed."""
    deadline = time.monotonic() + bound
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def started(gate: Path, host: str | None = None) -> dict[str, str]:
    """task id -> host of each started attempt (the latest), optionally only `host`'s."""
    found = {}
    for marker in sorted(gate.glob("*.started")):
        node = marker.read_text()
        if host is None or node == host:
            found[marker.name.split(".")[0]] = node
    return found


def attempts_alive(gate: Path, tasks: str = "abcd") -> list[str]:
    """The tasks with an attempt still running, anywhere: its lock is held."""
    alive = []
    for task_id in tasks:
        path = gate / f"{task_id}.lock"
        if not path.exists():
            continue
        with open(path, "a") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                alive.append(task_id)
    return alive


def children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


class Server:
    """`plait serve` as PID 2 of new UTS and PID namespaces, with hostname `host`."""

    def __init__(self, url: str, root: Path, host: str) -> None:
        self.host = host
        env = {**os.environ, "XDG_DATA_HOME": str(root / "data"), "PLAIT_TOKEN": TOKEN, **LEASES}
        script = 'hostname "$0" && "$@"; exit $?'
        argv = [sys.executable, "-c", SERVE, "serve", "--host", "127.0.0.1", "--port", "0"]
        argv += ["--db", url]
        self.log = root / f"{host}-{time.time_ns()}.log"
        self._log = self.log.open("w")
        self.process = subprocess.Popen(
            [
                "unshare",
                "-u",
                "-p",
                "-f",
                "--mount-proc",
                "--kill-child",
                "sh",
                "-c",
                script,
                host,
                *argv,
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=self._log,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        assert self.process.stdout is not None
        self.base = ""
        for line in self.process.stdout:
            found = re.search(r"plait dashboard: (http://[^/]+)/", line)
            if found:
                self.base = found.group(1)
                break
        if not self.base:
            self._log.close()
            raise AssertionError(f"plait serve on {host} exited with {self.process.wait()}")
        self.client = httpx.Client(
            base_url=self.base,
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=60,
        )

    @property
    def plait_pid(self) -> int:
        """The host's pid of the plait process (the namespace's PID 2)."""
        shell = children(self.process.pid)
        plait = children(shell[0]) if shell else []
        assert plait, f"no plait process under {self.process.pid}"
        return plait[0]

    def kill_plait(self) -> None:
        os.kill(self.plait_pid, signal.SIGKILL)

    def stacks(self) -> str:
        """Every asyncio task's stack, as the server prints it: for a test that timed out."""
        os.kill(self.plait_pid, signal.SIGUSR2)
        time.sleep(1)  # a diagnosis after a failure, not synchronisation
        return self.log.read_text()[-20000:]

    def get(self, path: str) -> httpx.Response:
        try:
            return self.client.get(path)
        except httpx.TimeoutException:
            raise AssertionError(f"{self.host} did not answer {path}:\n{self.stacks()}") from None

    def metric(self, name: str) -> float:
        text = self.get("/metrics").text
        found = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
        assert found, f"no metric {name}"
        return float(found.group(1))

    def close(self) -> None:
        self.client.close()
        if self.process.poll() is None:
            self.process.kill()  # --kill-child: the namespace goes with it
            self.process.wait(timeout=60)
        if self.process.stdout is not None:
            self.process.stdout.close()
        self._log.close()


@contextmanager
def servers(url: str, root: Path, *hosts: str) -> Iterator[list[Server]]:
    started_servers: list[Server] = []
    try:
        for host in hosts:
            started_servers.append(Server(url, root, host))
        yield started_servers
    finally:
        for server in started_servers:
            server.close()


def register(server: Server, repo: Path, plan_path: Path) -> str:
    created = server.client.post("/api/projects", json={"path": str(repo)})
    assert created.status_code == 201, created.text
    project_id = str(created.json()["project_id"])
    plan = yaml.safe_load(plan_path.read_text())
    put = server.client.put(f"/api/projects/{project_id}/plan", json=plan)
    assert put.status_code == 200, put.text
    return project_id


def start(server: Server, project_id: str) -> str:
    response = server.client.post(f"/api/projects/{project_id}/parallel/start")
    assert response.status_code == 202, response.text
    return str(response.json()["run_id"])


def events(store: SqlEventStore, run_id: str) -> list[StoredEvent]:
    return store.read_stream(run_stream(run_id))


def project_events(store: SqlEventStore, project_id: str) -> list[StoredEvent]:
    return store.read_stream(project_stream(project_id))


def ended(store: SqlEventStore, project_id: str, run_id: str) -> list[StoredEvent]:
    return [
        e
        for e in project_events(store, project_id)
        if e.type == "RunEnded" and e.data["run_id"] == run_id
    ]


def actor(event: StoredEvent) -> str:
    return str(event.metadata.get("actor", ""))


def merges(repo: Path) -> list[str]:
    return git(repo, "log", "--format=%s", "main").splitlines()


def dump(events_: list[StoredEvent]) -> str:
    return json.dumps([(e.type, actor(e)) for e in events_])
