"""Engine construction with the settings each backend needs.

SQLite: WAL so readers never block the writer, BEGIN IMMEDIATE for writes so two writers
queue on the busy timeout instead of deadlocking on a lock upgrade, synchronous=NORMAL by
default (SQLITE_SYNCHRONOUS, chosen in docs/reliability.md "SQLite durability"; FULL through
$PLAIT_SQLITE_SYNCHRONOUS), and checkpoints off the commit path (checkpoints.py).
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL

from plait.eventstore.checkpoints import AUTOCHECKPOINT_PAGES
from plait.eventstore.errors import StoreUnavailable

SQLITE_BUSY_TIMEOUT_MS = 60_000
# The durability of a commit (docs/reliability.md, "SQLite durability"): FULL syncs the WAL at
# every commit, so an acknowledged append survives a power loss; NORMAL syncs it only at
# checkpoints, so a power loss may drop the last commits (never a process crash).
SQLITE_SYNCHRONOUS = "NORMAL"
SYNCHRONOUS_LEVELS = ("OFF", "NORMAL", "FULL", "EXTRA")
SYNCHRONOUS_ENV = "PLAIT_SQLITE_SYNCHRONOUS"
WRITE_OPTION = "plait_write"


def sqlite_synchronous(explicit: str | None = None) -> str:
    """The level asked for (argument, then $PLAIT_SQLITE_SYNCHRONOUS), else the default."""
    level = (explicit or os.environ.get(SYNCHRONOUS_ENV) or SQLITE_SYNCHRONOUS).upper()
    if level not in SYNCHRONOUS_LEVELS:
        raise StoreUnavailable(
            f"SQLite synchronous level {level!r} (${SYNCHRONOUS_ENV}): use one of "
            + ", ".join(SYNCHRONOUS_LEVELS)
        )
    return level


def build_engine(url: URL, *, autocommit: bool = False, synchronous: str | None = None) -> Engine:
    if url.get_backend_name() == "sqlite":
        return _sqlite_engine(url, sqlite_synchronous(synchronous))
    if autocommit:
        engine = create_engine(url, isolation_level="AUTOCOMMIT", pool_size=5, max_overflow=20)
    else:
        engine = create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10)
    event.listen(engine, "connect", _utc_session)
    event.listen(engine, "connect", _packed_arrays)
    return engine


def _packed_arrays(dbapi_connection: Any, _record: Any) -> None:
    from plait.eventstore import pg_arrays  # psycopg: only for PostgreSQL

    pg_arrays.register(dbapi_connection.adapters)


def _utc_session(dbapi_connection: Any, _record: Any) -> None:
    """Sessions in UTC, whatever the server's TimeZone: recorded_at comes back in UTC, and
    psycopg builds UTC datetimes in C, where a named zone such as 'Etc/UTC' costs a
    zoneinfo conversion per value (half the time of reading history)."""
    autocommit = dbapi_connection.autocommit
    dbapi_connection.autocommit = True
    dbapi_connection.execute("SET TIME ZONE 'UTC'")
    dbapi_connection.autocommit = autocommit


def _sqlite_engine(url: URL, synchronous: str) -> Engine:
    database = url.database or ""
    if database and database != ":memory:":
        directory = Path(database).expanduser().parent
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # e.g. under a file, or on a read-only filesystem
            raise StoreUnavailable(
                f"database {database}: cannot create its directory {directory}: {exc.strerror}"
            ) from None
    engine = create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
        # Hand transaction control to SQLAlchemy's "begin" hook below.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute(f"PRAGMA synchronous = {synchronous}")
        # Checkpoints run on the store's own thread (checkpoints.py); this is the safety net.
        cursor.execute(f"PRAGMA wal_autocheckpoint = {AUTOCHECKPOINT_PAGES}")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        immediate = connection.get_execution_options().get(WRITE_OPTION, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine
