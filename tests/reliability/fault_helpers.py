"""The fault tests' harness: the real `Plait` service on a real store, real git repositories,
and marker files through which a test and a task wait on each other (bounded, never a sleep
as synchronisation).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import socket
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from plait.eventstore import SqlEventStore, StoredEvent
from plait.execution.service import Plait
from plait.execution.settings import Settings
from tests.gitrepo import git, make_repo
from tests.integration import orchestration_helpers as orchestration
from tests.integration.orchestration_helpers import of_type, plan, task

__all__ = ["of_type", "plan", "task"]

PYTHON = shlex.quote(sys.executable)
PLAIT = str(Path(sys.executable).with_name("plait"))
# Every wait on a marker is bounded: a broken plait fails the test instead of hanging it.
WAIT_SECONDS = 60.0


@dataclass(frozen=True)
class Finished(orchestration.Finished):
    def of_type(self, *types: str) -> list[dict[str, Any]]:
        return of_type(self.events, *types)


class FaultHarness(orchestration.Harness):
    """The orchestration tests' harness, plus the settings in force and a marker directory."""

    def __init__(
        self, root: Path, repo: Path, store: SqlEventStore, service: Plait, settings: Settings
    ) -> None:
        super().__init__(root, repo, store, service)
        self.settings = settings
        self.markers = root / "markers"  # outside every worktree
        self.markers.mkdir(exist_ok=True)

    async def finish(self, run_id: str) -> Finished:
        done = await super().finish(run_id)
        return Finished(done.run_id, done.result, done.events)

    async def run(self, plan: Mapping[str, Any], *, max_concurrency: int | None = None) -> Finished:
        return await self.finish(await self.start(plan, max_concurrency=max_concurrency))

    def marker(self, name: str) -> Path:
        return self.markers / name


@contextlib.asynccontextmanager
async def open_harness(
    tmp_path: Path,
    *,
    store_url: str | None = None,
    worktree_root: Path | None = None,
    stop_grace: float = 0.5,
    repo: Path | None = None,
    **settings: Any,
) -> AsyncIterator[FaultHarness]:
    """A started service on `store_url` (default: a SQLite file) with a fresh repository
    (or `repo`)."""
    repo = repo or make_repo(tmp_path / "repo")
    store = SqlEventStore(store_url or f"sqlite:///{tmp_path / 'plait.db'}")
    settings.setdefault("log_root", tmp_path / "logs")
    chosen = Settings(worktree_root=worktree_root, stop_grace=stop_grace, **settings)
    service = Plait(store, chosen)
    await service.start()
    try:
        yield FaultHarness(tmp_path, repo, store, service, chosen)
    finally:
        await service.close()
        store.close()


# -- plans ---------------------------------------------------------------------------------


# `task` and `plan` are the orchestration tests' own builders (re-exported for these tests).


def write(name: str, text: str) -> str:
    """A shell command that writes `text` and a newline to `name` in the task's worktree."""
    return f"echo {shlex.quote(text)} > {shlex.quote(name)}"


def wait_for_file(path: Path) -> str:
    """A shell loop that waits (bounded) until `path` exists; exit 97 if it never does."""
    quoted = shlex.quote(str(path))
    rounds = int(WAIT_SECONDS / 0.05)
    return (
        f"i=0; until [ -e {quoted} ]; do i=$((i+1)); "
        f'if [ "$i" -gt {rounds} ]; then echo "gave up waiting for {path}" >&2; exit 97; fi; '
        "sleep 0.05; done"
    )


def touch(path: Path) -> str:
    return f": > {shlex.quote(str(path))}"


def wait_until(condition: Callable[[], bool], what: str, seconds: float = WAIT_SECONDS) -> None:
    """Poll (bounded) from the test's side for something a task or plait does."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting: {what}")
        time.sleep(0.02)


# -- reading events and the repository -----------------------------------------------------


def types_of(events: Iterable[StoredEvent]) -> list[str]:
    return [e.type for e in events if e.type != "TaskOutput"]


def refs(repo: Path) -> dict[str, str]:
    """Every ref of the repository and what it points at."""
    listing = git(repo, "for-each-ref", "--format=%(refname) %(objectname)")
    return dict(line.split(" ", 1) for line in listing.splitlines())


def worktree_paths(repo: Path) -> list[Path]:
    listing = git(repo, "worktree", "list", "--porcelain")
    return [Path(line[9:]) for line in listing.splitlines() if line.startswith("worktree ")]


def files_on(repo: Path, ref: str) -> set[str]:
    return set(git(repo, "ls-tree", "-r", "--name-only", ref).splitlines())


def tree_listing(root: Path) -> set[str]:
    """Every path below `root` (for 'nothing was created outside plait's own' checks)."""
    found = set()
    for directory, dirs, files in os.walk(root):
        for name in dirs + files:
            found.add(str(Path(directory, name).relative_to(root)))
    return found


async def wait_for_path(path: Path, seconds: float = WAIT_SECONDS) -> None:
    """Wait (bounded) until a task creates `path`."""
    deadline = time.monotonic() + seconds
    while not path.exists():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {path}")
        await asyncio.sleep(0.02)


# -- a database connection that the test can cut --------------------------------------------


class TcpProxy:
    """A TCP forwarder between plait and a database server, in threads of its own.

    `cut()` drops every open connection and refuses new ones (the database is unreachable,
    as behind a failed network); `restore()` lets connections through again.
    """

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._refusing = threading.Event()
        self._closed = False
        self.refused = 0  # connections refused while cut
        self._thread = threading.Thread(target=self._accept, name="tcp-proxy", daemon=True)
        self._thread.start()

    def cut(self) -> None:
        self._refusing.set()
        with self._lock:
            doomed, self._open = self._open, set()
        for sock in doomed:
            _shut(sock)

    def restore(self) -> None:
        self._refusing.clear()

    def close(self) -> None:
        self._closed = True
        self.cut()
        _shut(self._listener)
        self._thread.join(timeout=5)

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self._refusing.is_set():
                self.refused += 1
                _shut(client)
                continue
            try:
                server = socket.create_connection(self.upstream)
            except OSError:
                _shut(client)
                continue
            with self._lock:
                self._open |= {client, server}
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            with self._lock:
                self._open -= {source, sink}
            _shut(source)
            _shut(sink)


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()


def through_proxy(url: str, proxy: TcpProxy) -> str:
    """`url` (postgresql://user@host:port/db?...) with its host and port replaced by the proxy's."""
    parts = urlsplit(url)
    user = f"{parts.username}@" if parts.username else ""
    return urlunsplit(parts._replace(netloc=f"{user}127.0.0.1:{proxy.port}"))


def upstream_of(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or 5432
