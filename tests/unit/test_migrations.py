"""The store's fast schema check agrees with Alembic."""

from __future__ import annotations

from plait.eventstore import migrate


def test_the_head_the_store_checks_for_is_alembics_newest_migration() -> None:
    assert migrate.head_revision() == migrate.HEAD
