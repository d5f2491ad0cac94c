"""Alembic environment: runs on the connection plait hands over, or on the configured URL."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from plait.eventstore.engines import build_engine
from plait.eventstore.schema import metadata
from plait.eventstore.urls import configured_url, normalise_url


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = context.config.get_main_option("sqlalchemy.url") or configured_url()
    engine = build_engine(normalise_url(url))
    try:
        with engine.connect() as conn:
            _run(conn)
            conn.commit()
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise SystemExit("plait migrations run online only: use `plait db upgrade`")
run_migrations_online()
