"""Projection tables: run status, projects, audit timeline, checkpoints.

Revision ID: 0002_projections
Revises: 0001_events
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_projections"
down_revision = "0001_events"
branch_labels = None
depends_on = None

_POSITION = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "plait_projection_checkpoints",
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("position", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "plait_run_status",
        sa.Column("run_id", sa.String(100), primary_key=True),
        sa.Column("project_id", sa.String(100), nullable=False),
        sa.Column("status", sa.String(30), nullable=False),
        sa.Column("created_position", sa.BigInteger(), nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.Text(), nullable=False),
    )
    op.create_index("ix_plait_run_status_project_id", "plait_run_status", ["project_id"])
    op.create_table(
        "plait_projects",
        sa.Column("project_id", sa.String(100), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("repo_path", sa.Text(), nullable=False),
        sa.Column("registered_at", sa.String(40), nullable=False),
        sa.Column("plan", sa.Text(), nullable=True),
        sa.Column("active_run_id", sa.String(100), nullable=True),
        sa.Column("last_run_id", sa.String(100), nullable=True),
        sa.Column("position", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "plait_timeline",
        sa.Column("position", _POSITION, primary_key=True, autoincrement=False),
        sa.Column("project_id", sa.String(100), nullable=True),
        sa.Column("run_id", sa.String(100), nullable=True),
        sa.Column("type", sa.String(100), nullable=False),
        sa.Column("recorded_at", sa.String(40), nullable=False),
    )
    op.create_index("ix_plait_timeline_project_id", "plait_timeline", ["project_id"])
    op.create_index("ix_plait_timeline_run_id", "plait_timeline", ["run_id"])
    op.create_index("ix_plait_timeline_recorded_at", "plait_timeline", ["recorded_at"])


def downgrade() -> None:
    for table in (
        "plait_timeline",
        "plait_projects",
        "plait_run_status",
        "plait_projection_checkpoints",
    ):
        op.drop_table(table)
