"""Run leases: which process drives which run.

Revision ID: 0003_run_leases
Revises: 0002_projections
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_run_leases"
down_revision = "0002_projections"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "plait_run_leases",
        sa.Column("run_id", sa.String(100), primary_key=True),
        sa.Column("owner", sa.String(300), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("plait_run_leases")
