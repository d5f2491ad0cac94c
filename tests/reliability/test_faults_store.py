"""The database: unreachable when plait starts, or lost in the middle of a run.

At start: every command says so in one line on stderr and exits 2, no traceback.
Mid-run (PostgreSQL behind a TCP proxy the test cuts): the run pauses, retrying with the
same event ids, and carries on when the database returns; if it stays away longer than
Settings.outage_tolerance the run ends, nothing half-written is stored, and it resumes
once the database is back.
"""

from __future__ import annotations

import asyncio
import logging
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from plait.cli import main
from plait.domain.ids import result_branch
from plait.projections.audit import verify_lifecycles
from plait.projections.codec import run_stream
from tests.gitrepo import git
from tests.integration.orchestration_helpers import process_gone
from tests.reliability.fault_helpers import (
    PLAIT,
    TcpProxy,
    files_on,
    open_harness,
    plan,
    task,
    through_proxy,
    touch,
    types_of,
    upstream_of,
    wait_for_file,
    wait_for_path,
    write,
)

UNREACHABLE = [
    "postgresql://postgres@127.0.0.1:1/plait",  # nothing listens on port 1
    "sqlite:///{tmp}/a-file/plait.db",  # its directory would have to be under a file
    "sqlite:///{tmp}",  # a directory, not a database file
]
COMMANDS = [
    ["run", "{tmp}/plan.yaml", "--repo", "{tmp}/repo"],
    ["resume", "abc123"],
    ["status"],
    ["history", "abc123"],
    ["verify"],
    ["db", "upgrade"],
    ["projections", "rebuild"],
]


@pytest.mark.parametrize("url", UNREACHABLE)
def test_every_command_reports_an_unreachable_database_in_one_line(
    url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    git(tmp_path, "init", "--quiet", "repo")
    (tmp_path / "a-file").write_text("")
    (tmp_path / "plan.yaml").write_text("tasks:\n  - {id: a, run: 'true'}\n")
    for command in COMMANDS:
        argv = [a.format(tmp=tmp_path) for a in command] + ["--db", url.format(tmp=tmp_path)]
        status = main(argv)  # a traceback would be an exception here
        out, err = capsys.readouterr()
        assert status == 2, f"plait {' '.join(argv)}: exit {status}\n{err}"
        lines = err.strip().splitlines()
        assert len(lines) == 1, f"plait {' '.join(argv)}:\n{err}"
        assert lines[0].startswith("plait: database "), lines[0]
        assert out == ""
    assert git(tmp_path / "repo", "for-each-ref") == ""  # nothing was written to the repo


@pytest.mark.parametrize("url", UNREACHABLE)
def test_plait_serve_reports_an_unreachable_database_in_one_line_and_serves_nothing(
    url: str, tmp_path: Path
) -> None:
    (tmp_path / "a-file").write_text("")
    done = subprocess.run(
        [PLAIT, "serve", "--port", "0", "--token", "t", "--db", url.format(tmp=tmp_path)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "database" in lines[0]
    assert "plait dashboard" not in done.stdout


def test_plait_run_exits_non_zero_with_one_line_when_the_database_is_down(tmp_path: Path) -> None:
    """The real console script, as a user runs it."""
    git(tmp_path, "init", "--quiet", "repo")
    (tmp_path / "plan.yaml").write_text("tasks:\n  - {id: a, run: 'true'}\n")
    done = subprocess.run(
        [
            PLAIT,
            "run",
            str(tmp_path / "plan.yaml"),
            "--repo",
            str(tmp_path / "repo"),
            "--db",
            "postgresql://postgres@127.0.0.1:1/plait",
        ],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 2
    assert done.stdout == ""
    assert "Traceback" not in done.stderr
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("plait: database postgresql+psycopg://postgres@127.0.0.1:1/plait")
    assert "Connection refused" in line


# -- lost mid-run ----------------------------------------------------------------------------


class _Pauses(logging.Handler):
    """Counts the 'paused' warnings plait logs while it retries an append."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.loop = asyncio.get_running_loop()
        self.count = 0
        self.changed = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if record.name == "plait.execution.run.recorder" and "paused" in record.getMessage():
            self.loop.call_soon_threadsafe(self._bump)

    def _bump(self) -> None:
        self.count += 1
        self.changed.set()

    async def at_least(self, count: int) -> None:
        async with asyncio.timeout(60):
            while self.count < count:
                self.changed.clear()
                await self.changed.wait()


@pytest.fixture
def proxy(pg_schema_url: str) -> Iterator[TcpProxy]:
    opened = TcpProxy(upstream_of(pg_schema_url))
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture
async def pauses() -> AsyncIterator[_Pauses]:
    handler = _Pauses()
    logger = logging.getLogger("plait")
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


def _gated(h_markers: Path, name: str) -> tuple[str, Path, Path]:
    """A task that says it started, waits for the test, then writes its file."""
    started, go = h_markers / f"{name}.started", h_markers / f"{name}.go"
    return f"{touch(started)}; {wait_for_file(go)}; " + write(f"{name}.txt", name), started, go


@pytest.mark.postgres
async def test_a_run_pauses_while_the_database_is_unreachable_and_then_completes(
    tmp_path: Path, pg_schema_url: str, proxy: TcpProxy, pauses: _Pauses
) -> None:
    url = through_proxy(pg_schema_url, proxy)
    async with open_harness(tmp_path, store_url=url) as h:
        run, started, go = _gated(h.markers, "a")
        run_id = await h.start(plan(task("a", run), task("b", write("b.txt", "b"), "a")))
        await wait_for_path(started)
        proxy.cut()  # the database is gone while task a runs ...
        go.touch()  # ... and finishes: recording its success has to wait
        await pauses.at_least(3)
        proxy.restore()
        done = await h.finish(run_id)
        await asyncio.wait_for(h.service.wait_until_projected(), 60)
        status = h.service.read.run_status(run_id)
        assert h.store.verify().ok
        replay = verify_lifecycles(h.store)
    assert done.result.status == "landed", done.result.error
    assert replay.ok, replay.problem
    assert status is not None
    assert status["status"] == "landed"
    # Every event once: the retried appends did not store anything twice.
    assert types_of(done.events).count("TaskSucceeded") == 2
    ids = [e.event_id for e in done.events]
    assert len(ids) == len(set(ids))
    assert {"a.txt", "b.txt"} <= files_on(h.repo, "main")


@pytest.mark.postgres
async def test_a_database_gone_for_longer_than_the_tolerance_ends_the_run_resumable(
    tmp_path: Path, pg_schema_url: str, proxy: TcpProxy, pauses: _Pauses
) -> None:
    url = through_proxy(pg_schema_url, proxy)
    async with open_harness(tmp_path, store_url=url, outage_tolerance=0.5) as h:
        run, started, go = _gated(h.markers, "a")
        project_id = await h.project()
        run_id = await h.start(plan(task("a", run), task("b", write("b.txt", "b"), "a")))
        await wait_for_path(started)
        proxy.cut()
        go.touch()
        failed = await h.service.wait_run(run_id)  # gives up after the tolerance
        assert pauses.count >= 1
        proxy.restore()
        # What is stored is a valid, shorter history: the run is still running in it (its
        # end could not be recorded), so nothing claims an outcome that did not happen.
        assert h.store.verify().ok
        assert verify_lifecycles(h.store).ok
        stored = types_of(h.events(run_id))
        assert "RunFailed" not in stored
        assert "RunCompleted" not in stored
        # Once the database is back, the run resumes and finishes.
        assert await h.service.resume_run(project_id, run_id) == run_id
        done = await h.finish(run_id)
        await asyncio.wait_for(h.service.wait_until_projected(), 60)
        status = h.service.read.run_status(run_id)
        replay = verify_lifecycles(h.store)
        assert h.store.verify().ok
    # The result is what was stored: the run's failure could not be, so it says running.
    assert failed.status == "running"
    assert failed.error is not None
    assert "StoreUnavailable" in failed.error
    assert done.result.status == "landed", done.result.error
    assert replay.ok, replay.problem
    assert status is not None
    assert status["status"] == "landed"
    assert {"a.txt", "b.txt"} <= files_on(h.repo, "main")
    assert git(h.repo, "branch", "--list", "plait/*") == ""
    assert result_branch(run_id) not in git(h.repo, "branch", "--list")
    assert run_stream(run_id)


@pytest.mark.postgres
async def test_a_driver_cut_off_from_the_database_stops_its_tasks_before_its_lease_expires(
    tmp_path: Path, pg_schema_url: str, proxy: TcpProxy
) -> None:
    from plait.eventstore import SqlEventStore
    from plait.eventstore.leases import LeaseStore, LeaseTimings

    url = through_proxy(pg_schema_url, proxy)
    timings = LeaseTimings(ttl=6, renew_every=1, takeover_every=0.5)
    direct = SqlEventStore(pg_schema_url)  # the test's own view, not through the proxy
    try:
        async with open_harness(
            tmp_path, store_url=url, stop_grace=2, leases=timings, outage_tolerance=1
        ) as h:
            pid_file = h.marker("pid")
            run_id = await h.start(plan(task("a", f"echo $$ > {pid_file}; exec sleep 300")))
            await wait_for_path(pid_file)
            pid = int(pid_file.read_text())
            proxy.cut()  # renewals fail from now on; the lease runs out by the DB's clock
            async with asyncio.timeout(60):
                while not process_gone(pid):
                    await asyncio.sleep(0.05)
            # The task is gone, and the lease it was driven under has not yet expired: no
            # other server could have started the task again while this one still ran.
            assert LeaseStore(direct).holder(run_id) is not None
            stored = [e.type for e in direct.read_stream(run_stream(run_id))]
            result = await h.service.wait_run(run_id)
            proxy.restore()
    finally:
        direct.close()
    assert "TaskInterrupted" not in stored  # it could not write, and did not pretend to
    assert result.status == "running"  # what was stored: another server takes it over
