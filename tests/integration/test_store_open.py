"""Opening a store whose schema is current does no migration work: one query, no Alembic,
and an SQLite store never imports the PostgreSQL driver."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import text

from plait.eventstore import SqlEventStore

PROBE = """
import sys
from plait.eventstore import SqlEventStore
SqlEventStore(sys.argv[1]).close()
print(" ".join(sorted(m for m in ("alembic", "psycopg") if m in sys.modules)))
"""


def loaded_when_opening(url: str) -> set[str]:
    result = subprocess.run(
        [sys.executable, "-c", PROBE, url], capture_output=True, text=True, timeout=60, check=True
    )
    return set(result.stdout.split())


def test_opening_a_current_database_runs_no_migration(store_url: str) -> None:
    SqlEventStore(store_url).close()  # the first open creates the schema
    loaded = loaded_when_opening(store_url)
    assert "alembic" not in loaded
    if store_url.startswith("sqlite"):
        assert "psycopg" not in loaded


def test_sqlite_durability_is_normal_by_default_and_full_on_request(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def level(store: SqlEventStore) -> int:
        with store.connect() as conn:
            return int(conn.execute(text("PRAGMA synchronous")).scalar_one())

    url = f"sqlite:///{tmp_path / 'plait.db'}"
    store = SqlEventStore(url)
    try:
        assert level(store) == 1  # NORMAL
    finally:
        store.close()
    monkeypatch.setenv("PLAIT_SQLITE_SYNCHRONOUS", "full")
    store = SqlEventStore(url)
    try:
        assert level(store) == 2  # FULL
    finally:
        store.close()


def test_a_bad_durability_setting_is_refused_by_name(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            str(Path(sys.executable).with_name("plait")),
            "verify",
            "--db",
            f"sqlite:///{tmp_path}/x.db",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PLAIT_SQLITE_SYNCHRONOUS": "sometimes"},
        check=False,
    )
    assert result.returncode == 2
    assert "PLAIT_SQLITE_SYNCHRONOUS" in result.stderr
    assert "Traceback" not in result.stderr
