"""Keep plait_append on its indexes whatever the table's statistics say.

PL/pgSQL caches each statement's plan. Planned while the table was small (or never
analyzed), the duplicate-id check can stay a sequential scan as the table grows, and an
append slows down until autovacuum analyzes the table. Every statement of the function is
an index lookup, so sequential scans are turned off inside it.

Revision ID: 0004_append_plan_hint
Revises: 0003_run_leases
Create Date: 2026-11-27
"""

from __future__ import annotations

from alembic import op

revision = "0004_append_plan_hint"
down_revision = "0003_run_leases"
branch_labels = None
depends_on = None

SIGNATURE = (
    "plait_append(text, integer, text[], text[], integer[], text[], text[], timestamptz, text)"
)


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"ALTER FUNCTION {SIGNATURE} SET enable_seqscan = off")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"ALTER FUNCTION {SIGNATURE} RESET enable_seqscan")
