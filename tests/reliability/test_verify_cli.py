"""`plait verify` exits non-zero and names the first bad event of a tampered history."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

from plait.domain.events import TaskSucceeded
from plait.eventstore import SqlEventStore
from plait.projections.codec import encode, run_stream, stream_of
from tests.histories import registered, run_events

PLAIT = str(Path(sys.executable).with_name("plait"))


def verify(url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PLAIT, "verify", "--db", url],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def a_store_with_a_run(path: Path) -> tuple[str, list[int]]:
    url = f"sqlite:///{path}"
    store = SqlEventStore(url)
    positions = []
    for event in [*registered("p1", [["a", "b"]]), *run_events("p1", "r1", [["a", "b"]])]:
        positions += store.append(stream_of(event), [encode(event)], expected_version=None)
    store.close()
    return url, positions


def test_verify_passes_an_intact_history(tmp_path: Path) -> None:
    url, _ = a_store_with_a_run(tmp_path / "plait.db")
    result = verify(url)
    assert result.returncode == 0, result.stderr
    assert "hash chain intact" in result.stdout
    assert result.stdout.rstrip().endswith(", 1 run replays cleanly")


def test_verify_names_an_event_edited_by_hand(tmp_path: Path) -> None:
    url, positions = a_store_with_a_run(tmp_path / "plait.db")
    with sqlite3.connect(tmp_path / "plait.db") as db:
        db.execute("DROP TRIGGER plait_events_no_update")
        db.execute(
            "UPDATE plait_events SET data = replace(data, 'line', 'LINE') WHERE position = ?",
            (positions[7],),
        )
    result = verify(url)
    assert result.returncode == 1
    assert f"position {positions[7]}" in result.stderr


def test_verify_names_a_gap_left_by_a_deleted_event(tmp_path: Path) -> None:
    url, positions = a_store_with_a_run(tmp_path / "plait.db")
    with sqlite3.connect(tmp_path / "plait.db") as db:
        db.execute("DROP TRIGGER plait_events_no_delete")
        db.execute("DELETE FROM plait_events WHERE position = ?", (positions[4],))
    result = verify(url)
    assert result.returncode == 1
    assert "missing" in result.stderr


def test_verify_names_an_event_that_breaks_a_lifecycle_even_with_a_valid_chain(
    tmp_path: Path,
) -> None:
    url, _ = a_store_with_a_run(tmp_path / "plait.db")
    store = SqlEventStore(url)
    # A second success for a task whose worktree was already removed: appended through the
    # store, so the hash chain is intact, but the history is impossible.
    bogus = TaskSucceeded(
        run_id="r1", batch_id=1, task_id="a", worktree_id="wt-a", attempt=1, commit="c"
    )
    [position] = store.append(run_stream("r1"), [encode(bogus)], expected_version=None)
    store.close()
    result = verify(url)
    assert result.returncode == 1
    assert f"position {position}" in result.stderr
    assert "INVALID HISTORY" in result.stderr
