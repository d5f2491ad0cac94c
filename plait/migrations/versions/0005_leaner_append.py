"""A leaner plait_append: same signature and results, less work in the database per append.

The function no longer looks the event ids up before inserting: the unique index on event_id
refuses a repeated id, and the client tells a retried append from a conflict, as it already
does on SQLite. See ddl.APPEND_FUNCTION_0005 for the other changes.

Revision ID: 0005_leaner_append
Revises: 0004_append_plan_hint
Create Date: 2026-11-28
"""

from __future__ import annotations

from alembic import op

from plait.eventstore.ddl import APPEND_FUNCTION, APPEND_FUNCTION_0005, APPEND_SIGNATURE

revision = "0005_leaner_append"
down_revision = "0004_append_plan_hint"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(APPEND_FUNCTION_0005)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(APPEND_FUNCTION)
        op.execute(f"ALTER FUNCTION {APPEND_SIGNATURE} SET enable_seqscan = off")
