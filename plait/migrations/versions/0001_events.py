"""The append-only events table, its guards, and the PostgreSQL append function.

Revision ID: 0001_events
Revises:
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from plait.eventstore.ddl import APPEND_FUNCTION, IMMUTABILITY_GUARD, SQLITE_IMMUTABILITY_GUARD

revision = "0001_events"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "plait_events",
        sa.Column(
            "position",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=False,
        ),
        sa.Column("stream_id", sa.String(200), nullable=False),
        sa.Column("stream_version", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.String(36), nullable=False),
        sa.Column("type", sa.String(100), nullable=False),
        sa.Column("schema_version", sa.Integer(), nullable=False),
        sa.Column("data", sa.Text(), nullable=False),
        sa.Column("metadata", sa.Text(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.UniqueConstraint("stream_id", "stream_version", name="uq_plait_events_stream_version"),
        sa.UniqueConstraint("event_id", name="uq_plait_events_event_id"),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(APPEND_FUNCTION)
        op.execute(IMMUTABILITY_GUARD)
    else:
        for statement in SQLITE_IMMUTABILITY_GUARD:
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS plait_events_no_update ON plait_events")
        op.execute("DROP TRIGGER IF EXISTS plait_events_no_truncate ON plait_events")
        op.execute("DROP FUNCTION IF EXISTS plait_events_are_immutable()")
        op.execute("DROP FUNCTION IF EXISTS plait_append")
    op.drop_table("plait_events")
