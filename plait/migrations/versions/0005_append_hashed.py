"""plait_append_hashed: PostgreSQL appends that take the hash chain from the client.

Chaining in PL/pgSQL costs about 60 us an event, most of an append's time in the database.
The client chains in microseconds, but only the database knows, under its table lock, which
event is last. So the client sends the chain it computed onto the last event it knows of,
and the function uses it when that event is still the last one, and computes the chain
itself otherwise (another writer came between, or the client knew no last event).
plait_append (0001) stays, for clients of the earlier schema.

Revision ID: 0005_append_hashed
Revises: 0004_append_plan_hint
Create Date: 2026-11-28
"""

from __future__ import annotations

from alembic import op

from plait.eventstore.ddl import APPEND_HASHED_FUNCTION

revision = "0005_append_hashed"
down_revision = "0004_append_plan_hint"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(APPEND_HASHED_FUNCTION)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "DROP FUNCTION IF EXISTS plait_append_hashed(text, integer, text[], text[], "
            "integer[], text[], text[], timestamptz, text, bigint, text, text[])"
        )
