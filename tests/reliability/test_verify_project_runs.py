"""`plait verify` checks the project streams' lifecycle: each run start ended exactly once,
and runs of one project never overlap. The histories are crafted as someone with database
access would: the store's own guards (its triggers) dropped, the hash chain left intact."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from sqlalchemy import text

from plait.domain.events import DomainEvent, RunEnded, RunStarted
from plait.eventstore import SqlEventStore
from plait.eventstore.project_runs import check_project_runs
from plait.projections.codec import encode, stream_of
from tests.histories import registered, run_events

PLAIT = str(Path(sys.executable).with_name("plait"))


def crafted(url: str, extra: list[DomainEvent]) -> list[int]:
    """A project with one run that completed, then `extra`, appended past the guards."""
    store = SqlEventStore(url)
    try:
        with store.engine.connect() as conn:
            on_table = " ON plait_events" if store.dialect == "postgresql" else ""
            conn.execute(text(f"DROP TRIGGER plait_events_project_runs{on_table}"))
            conn.commit()
        positions = []
        history = [
            *registered("p1", [["a"]]),
            RunStarted(project_id="p1", run_id="r1"),
            *run_events("p1", "r1", [["a"]]),
            RunEnded(project_id="p1", run_id="r1", outcome="completed"),
            *extra,
        ]
        for event in history:
            positions += store.append(stream_of(event), [encode(event)], None)
        return positions
    finally:
        store.close()


def verify(url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PLAIT, "verify", "--db", url],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        check=False,
        timeout=120,
    )


def ended(run_id: str) -> RunEnded:
    return RunEnded(project_id="p1", run_id=run_id, outcome="failed")


def test_a_history_of_runs_started_and_ended_in_turn_passes(store_url: str) -> None:
    crafted(store_url, [RunStarted(project_id="p1", run_id="r1"), ended("r1")])
    store = SqlEventStore(store_url)
    try:
        report = check_project_runs(store)
    finally:
        store.close()
    assert report.ok, report.problem
    assert report.starts == 2  # r1 ran, and ran again after it ended (a resume)


def test_a_second_run_end_is_named(store_url: str) -> None:
    positions = crafted(store_url, [ended("r1")])
    store = SqlEventStore(store_url)
    try:
        report = check_project_runs(store)
    finally:
        store.close()
    assert not report.ok
    assert report.first_bad_position == positions[-1]
    assert report.problem == "project p1: run r1 ended twice (a second RunEnded)"


def test_overlapping_runs_of_one_project_are_named(store_url: str) -> None:
    positions = crafted(
        store_url,
        [RunStarted(project_id="p1", run_id="r2"), RunStarted(project_id="p1", run_id="r3")],
    )
    store = SqlEventStore(store_url)
    try:
        report = check_project_runs(store)
    finally:
        store.close()
    assert not report.ok
    assert report.first_bad_position == positions[-1]
    assert report.problem is not None
    assert "r3 started while run r2 was active" in report.problem


def test_an_end_of_a_run_never_started_is_named(store_url: str) -> None:
    crafted(store_url, [ended("ghost")])
    store = SqlEventStore(store_url)
    try:
        report = check_project_runs(store)
    finally:
        store.close()
    assert not report.ok
    assert report.problem is not None
    assert "ghost ended, but it was not the active run" in (report.problem)


def test_verify_exits_1_naming_the_second_run_end(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'plait.db'}"
    positions = crafted(url, [ended("r1")])
    result = verify(url)
    assert result.returncode == 1
    assert "INVALID HISTORY" in result.stderr
    assert f"position {positions[-1]}" in result.stderr
    assert "ended twice" in result.stderr


def test_verify_exits_1_naming_overlapping_runs(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'plait.db'}"
    crafted(
        url, [RunStarted(project_id="p1", run_id="r2"), RunStarted(project_id="p1", run_id="r3")]
    )
    result = verify(url)
    assert result.returncode == 1
    assert "runs overlap" in result.stderr
