"""Shared fixtures: a fresh event store on each backend.

PostgreSQL tests run against the server at 127.0.0.1:5432 (database `test`), each in a schema of
its own so runs never collide. Set PLAIT_TEST_PG_URL to point elsewhere. In CI (CI=true) an
unreachable server is a failure, not a skip.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from plait.eventstore import SqlEventStore
from tests.fakemodel.server import FakeModelServer, running_fake_model

PG_URL = os.environ.get("PLAIT_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def _pg_admin_url() -> str:
    return PG_URL.replace("postgresql://", "postgresql+psycopg://", 1)


@pytest.fixture(scope="session", autouse=True)
def data_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """plait's data directory (worktrees, logs) and config directory (profiles) for the
    whole session: never the user's own."""
    path = tmp_path_factory.mktemp("data-home")
    names = {"XDG_DATA_HOME": path, "XDG_CONFIG_HOME": tmp_path_factory.mktemp("config-home")}
    before = {name: os.environ.get(name) for name in names}
    os.environ.update({name: str(value) for name, value in names.items()})
    yield path
    for name, value in before.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture(scope="session")
def postgres_available() -> bool:
    try:
        engine = create_engine(_pg_admin_url())
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
        return True
    except OperationalError:
        if os.environ.get("CI"):
            raise
        return False


@pytest.fixture
def pg_schema_url(postgres_available: bool) -> Iterator[str]:
    """A URL whose connections live in a fresh schema, dropped afterwards."""
    if not postgres_available:
        pytest.skip("PostgreSQL is not reachable at " + PG_URL)
    schema = f"plait_test_{uuid.uuid4().hex[:12]}"
    engine = create_engine(_pg_admin_url(), isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in PG_URL else "?"
    try:
        yield f"{PG_URL}{sep}options=-csearch_path%3D{schema}"
    finally:
        with engine.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path_factory.mktemp('store') / 'plait.db'}"
    url: str = request.getfixturevalue("pg_schema_url")
    return url


@pytest.fixture
def store(store_url: str) -> Iterator[SqlEventStore]:
    opened = SqlEventStore(store_url)
    try:
        yield opened
    finally:
        opened.close()


_postgres_outcomes: dict[str, int] = {}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    finished = report.when == "call" or (report.when == "setup" and report.outcome != "passed")
    if finished and "postgres" in report.keywords:
        _postgres_outcomes[report.outcome] = _postgres_outcomes.get(report.outcome, 0) + 1


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Say plainly whether the PostgreSQL half ran: CI must show it did, not skip it."""
    if _postgres_outcomes:
        counts = ", ".join(f"{n} {outcome}" for outcome, n in sorted(_postgres_outcomes.items()))
        terminalreporter.write_line(f"PostgreSQL tests (127.0.0.1:5432): {counts}")


@pytest.fixture(scope="session")
def fake_model() -> Iterator[FakeModelServer]:
    """The local stand-in for the model providers, shared by every agent test of the session."""
    with running_fake_model() as server:
        yield server
