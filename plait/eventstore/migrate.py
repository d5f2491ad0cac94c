"""Schema upgrades through Alembic, run programmatically on a connection plait owns.

Every command opens the store, so the usual case (the schema is current) is answered with
one query and without importing Alembic: HEAD names the newest migration (a test keeps it
equal to Alembic's head). Only a database behind HEAD pays for Alembic.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine, inspect, text

if TYPE_CHECKING:
    from alembic.config import Config

HEAD = "0006_fenced_leases"
# An arbitrary constant: the PostgreSQL advisory lock that serialises concurrent upgrades.
_UPGRADE_LOCK_KEY = 0x706C6169


def alembic_config() -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", "plait:migrations")
    return config


def head_revision() -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(connection: Connection) -> str | None:
    if not inspect(connection).has_table("alembic_version"):
        return None
    return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()


def upgrade(engine: Engine) -> tuple[str | None, str | None]:
    """Bring the schema to head. Returns (revision before, revision after). Idempotent."""
    with engine.connect() as connection:
        before = current_revision(connection)
        connection.rollback()
    if before == HEAD:
        return before, before
    return _upgrade_with_alembic(engine)


def _upgrade_with_alembic(engine: Engine) -> tuple[str | None, str | None]:
    from alembic import command

    with engine.connect() as connection:
        if engine.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _UPGRADE_LOCK_KEY})
            connection.commit()
        try:
            before = current_revision(connection)
            connection.rollback()
            if before != head_revision():
                config = alembic_config()
                config.attributes["connection"] = connection
                command.upgrade(config, "head")
                connection.commit()
            after = current_revision(connection)
            connection.rollback()
        finally:
            if engine.dialect.name == "postgresql":
                connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _UPGRADE_LOCK_KEY})
                connection.commit()
    return before, after
