"""Database URLs: what the user writes, and what SQLAlchemy is given."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from plait.eventstore.errors import StoreUnavailable

ENV_VAR = "PLAIT_DATABASE_URL"


def default_database_url() -> str:
    """A SQLite file in the user's data directory: zero setup."""
    data_dir = Path(platformdirs.user_data_dir("plait", appauthor=False))
    return f"sqlite:///{data_dir / 'plait.db'}"


def configured_url(explicit: str | None = None) -> str:
    """--db wins, then PLAIT_DATABASE_URL, then the default."""
    return explicit or os.environ.get(ENV_VAR) or default_database_url()


def normalise_url(raw: str) -> URL:
    """Plain `sqlite:///PATH` and `postgresql://...` work as written; plait picks the driver."""
    try:
        url = make_url(raw)
    except ArgumentError as exc:
        raise StoreUnavailable(f"not a database URL: {raw!r} ({exc})") from None
    backend = url.get_backend_name()
    if backend == "sqlite":
        return url.set(drivername="sqlite+pysqlite")
    if backend in ("postgresql", "postgres"):
        return url.set(drivername="postgresql+psycopg")
    raise StoreUnavailable(
        f"unsupported database {backend!r} in {raw!r}: use sqlite:///PATH or postgresql://..."
    )


def display_url(url: URL) -> str:
    return url.render_as_string(hide_password=True)
