"""The projections' tables. Created by migration 0002; rebuilt by truncate + replay."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Integer, String, Table, Text

from plait.eventstore.schema import metadata

checkpoints = Table(
    "plait_projection_checkpoints",
    metadata,
    Column("name", String(100), primary_key=True),
    Column("position", BigInteger, nullable=False),
)

# One row per run: the folded run state as JSON, so a status read is one row whatever the
# length of the history.
run_status = Table(
    "plait_run_status",
    metadata,
    Column("run_id", String(100), primary_key=True),
    Column("project_id", String(100), nullable=False, index=True),
    Column("status", String(30), nullable=False),
    Column("created_position", BigInteger, nullable=False),
    Column("position", BigInteger, nullable=False),
    Column("state", Text, nullable=False),
)

projects = Table(
    "plait_projects",
    metadata,
    Column("project_id", String(100), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("repo_path", Text, nullable=False),
    Column("registered_at", String(40), nullable=False),
    Column("plan", Text, nullable=True),
    Column("active_run_id", String(100), nullable=True),
    Column("last_run_id", String(100), nullable=True),
    Column("position", BigInteger, nullable=False),
)

# The audit timeline: one row per event, keyed for "this project's or this run's history"
# and for mapping a point in time to a position.
timeline = Table(
    "plait_timeline",
    metadata,
    Column("position", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True),
    Column("project_id", String(100), nullable=True, index=True),
    Column("run_id", String(100), nullable=True, index=True),
    Column("type", String(100), nullable=False),
    Column("recorded_at", String(40), nullable=False, index=True),
)
