"""The orchestration behaviour tests' harness: the real `Plait` service on a real SQLite file,
real git repositories, and readers that answer questions from a run's events.

Each test module opens its own harness with `open_harness(tmp_path)` from a fixture.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shlex
import sys
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from plait.domain.plan.parsing import plan_from_mapping
from plait.eventstore import SqlEventStore, StoredEvent
from plait.execution.run.orchestrator import RunResult
from plait.execution.service import Plait
from plait.execution.settings import Settings
from plait.execution.worktrees.manager import default_worktree_base, repository_key
from plait.projections.codec import run_stream
from tests.gitrepo import git, make_repo

PYTHON = shlex.quote(sys.executable)
# Task and test commands wait on each other through marker files; this bounds every wait,
# so a broken scheduler fails a test instead of hanging it.
WAIT_ITERATIONS = 400  # x 0.05 s
ENDS = ("TaskSucceeded", "TaskFailed", "TaskInterrupted")
RUN_ENDS = ("RunCompleted", "RunFailed", "RunStopped")
# A harness fixture's params: every containment, lost-work and landing promise is proven for
# fresh task repositories and for pooled slots (`open_harness(reuse_worktrees=...)`).
WORKTREE_MODES = ["fresh", "pooled"]


@dataclass(frozen=True)
class Finished:
    run_id: str
    result: RunResult
    events: list[StoredEvent]


class Harness:
    """One repository, one store file, one service."""

    def __init__(self, root: Path, repo: Path, store: SqlEventStore, service: Plait) -> None:
        self.root = root
        self.repo = repo
        self.store = store
        self.service = service
        self.shared = root / "shared"  # outside every worktree: markers tasks leave each other
        self.shared.mkdir(exist_ok=True)
        self._project_id: str | None = None

    async def project(self) -> str:
        if self._project_id is None:
            self._project_id = await self.service.register_project(str(self.repo))
        return self._project_id

    async def start(self, plan: Mapping[str, Any], *, max_concurrency: int | None = None) -> str:
        project_id = await self.project()
        await self.service.submit_plan(project_id, plan_from_mapping(dict(plan)))
        return await self.service.start_run(project_id, max_concurrency=max_concurrency)

    async def finish(self, run_id: str) -> Finished:
        result = await self.service.wait_run(run_id)
        return Finished(run_id, result, self.events(run_id))

    async def run(self, plan: Mapping[str, Any], *, max_concurrency: int | None = None) -> Finished:
        return await self.finish(await self.start(plan, max_concurrency=max_concurrency))

    def events(self, run_id: str) -> list[StoredEvent]:
        return self.store.read_stream(run_stream(run_id))

    async def wait_for_event(
        self, run_id: str, matches: Callable[[StoredEvent], bool]
    ) -> StoredEvent:
        """The first event of the run that `matches`, waiting for it as the store records it.
        Raises AssertionError if the run ends without one."""
        stream = run_stream(run_id)
        # The store's feed is an async generator: closed on the way out, whatever happens.
        feed = cast(AsyncGenerator[StoredEvent, None], self.store.subscribe(0))
        async with contextlib.aclosing(feed):
            async for stored in feed:
                if stored.stream_id != stream:
                    continue
                if matches(stored):
                    return stored
                if stored.type in RUN_ENDS:
                    raise AssertionError(f"run {run_id} ended ({stored.type}) before the event")
        raise AssertionError("the subscription ended")


@contextlib.asynccontextmanager
async def open_harness(
    tmp_path: Path,
    *,
    repo: Path | None = None,
    stop_grace: float = 0.5,
    reuse_worktrees: bool = True,
    keep_pool: bool = False,
) -> AsyncIterator[Harness]:
    """A started service on `sqlite:///<tmp>/plait.db` with a fresh repository (or `repo`).
    Task repositories are pooled, as by default; `reuse_worktrees=False` makes fresh ones."""
    repo = repo or make_repo(tmp_path / "repo")
    store = SqlEventStore(f"sqlite:///{tmp_path}/plait.db")
    settings = Settings(
        log_root=tmp_path / "logs",
        stop_grace=stop_grace,
        reuse_worktrees=reuse_worktrees,
        keep_pool=keep_pool,
    )
    service = Plait(store, settings)
    await service.start()
    try:
        yield Harness(tmp_path, repo, store, service)
    finally:
        await service.close()
        store.close()


# -- plans ---------------------------------------------------------------------------------


def task(task_id: str, run: str, *depends_on: str, **extra: Any) -> dict[str, Any]:
    return {"id": task_id, "run": run, "depends_on": list(depends_on), **extra}


def plan(*tasks: Mapping[str, Any], **settings: Any) -> dict[str, Any]:
    return {"retries": 0, **settings, "tasks": list(tasks)}


def write(name: str, text: str) -> str:
    """A shell command that writes `text` and a newline to `name` in the task's worktree."""
    return f'mkdir -p "$(dirname {shlex.quote(name)})" && echo {shlex.quote(text)} > {name}'


def wait_until(condition: str) -> str:
    """A shell loop that waits (bounded) until `condition` holds, failing the task if not."""
    return (
        f"i=0; until {condition}; do i=$((i+1)); "
        f'if [ "$i" -gt {WAIT_ITERATIONS} ]; then echo "gave up waiting: {condition}" >&2; '
        "exit 97; fi; sleep 0.05; done"
    )


# -- reading events ------------------------------------------------------------------------


def of_type(events: Iterable[StoredEvent], *types: str) -> list[dict[str, Any]]:
    return [dict(e.data) for e in events if e.type in types]


def types_of(events: Iterable[StoredEvent]) -> list[str]:
    return [e.type for e in events if e.type != "TaskOutput"]


def first_index(events: Sequence[StoredEvent], type_: str, **fields: Any) -> int:
    for index, event in enumerate(events):
        if event.type == type_ and all(event.data.get(k) == v for k, v in fields.items()):
            return index
    raise AssertionError(f"no {type_} with {fields}")


def most_running_at_once(events: Iterable[StoredEvent], batch_id: int | None = None) -> int:
    """The most task attempts started and not yet ended at any point of the event order."""
    running: set[tuple[str, int]] = set()
    most = 0
    for event in events:
        data = event.data
        if batch_id is not None and data.get("batch_id") != batch_id:
            continue
        key = (str(data.get("task_id")), int(data.get("attempt") or 0))
        if event.type == "TaskStarted":
            running.add(key)
            most = max(most, len(running))
        elif event.type in ENDS:
            running.discard(key)
    return most


def merged_count(events: Iterable[StoredEvent]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for data in of_type(events, "BranchMerged"):
        counts[data["task_id"]] = counts.get(data["task_id"], 0) + 1
    return counts


# -- reading the repository ----------------------------------------------------------------


def files_on(repo: Path, ref: str) -> set[str]:
    return set(git(repo, "ls-tree", "-r", "--name-only", ref).splitlines())


def file_on(repo: Path, ref: str, name: str) -> str:
    return git(repo, "show", f"{ref}:{name}")


def plait_branches(repo: Path) -> list[str]:
    listed = git(repo, "branch", "--list", "plait/*", "--format=%(refname:short)")
    return listed.splitlines()


def worktree_paths(repo: Path) -> list[Path]:
    """The repository's linked worktrees (its own checkout first), then the task
    repositories plait left under its default worktree root for it."""
    listing = git(repo, "worktree", "list", "--porcelain")
    linked = [
        Path(line[len("worktree ") :])
        for line in listing.splitlines()
        if line.startswith("worktree ")
    ]
    common = Path(git(repo, "rev-parse", "--path-format=absolute", "--git-common-dir"))
    root = default_worktree_base() / repository_key(common.resolve())
    return linked + sorted(p for p in root.glob("*/*") if (p / ".git").is_dir())


def fingerprint(checkout: Path) -> dict[str, str]:
    """A hash of every file of a checkout, tracked, untracked and ignored alike, plus the
    index and HEAD; nothing else under .git (plait may add refs and worktrees there)."""
    hashes: dict[str, str] = {}
    for directory, dirs, files in os.walk(checkout):
        if Path(directory) == checkout:
            dirs[:] = [d for d in dirs if d != ".git"]
        for name in files:
            path = Path(directory, name)
            hashes[str(path.relative_to(checkout))] = hashlib.sha256(path.read_bytes()).hexdigest()
    for name in ("index", "HEAD"):
        path = checkout / ".git" / name
        hashes[f".git/{name}"] = hashlib.sha256(path.read_bytes()).hexdigest()
    return hashes


def process_gone(pid: int) -> bool:
    """No such process, or only its zombie is left (nobody reaped it yet)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    state = next((line for line in status.splitlines() if line.startswith("State:")), "")
    return "Z" in state.split()[1:2]


def branch_tip(repo: Path, branch: str) -> str:
    return git(repo, "rev-parse", f"refs/heads/{branch}")
