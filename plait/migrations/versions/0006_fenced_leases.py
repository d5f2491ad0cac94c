"""Fenced leases and one active run per project, enforced by the store.

- plait_run_leases gains an epoch: every acquisition increments it, and an append that carries
  a fence (run id, epoch) is refused unless it is the lease's current, unexpired epoch.
  expires_at is now on the database's clock (seconds since the epoch), never the caller's.
- plait_active_runs holds each project's active run, kept by triggers in the transaction of
  the append: filled here from the stored project streams.
- PostgreSQL gains plait_append_fenced, plait_append with the fence check
  (ddl_0006.APPEND_FUNCTION_0006); unfenced appends keep using plait_append.

Revision ID: 0006_fenced_leases
Revises: 0005_leaner_append
Create Date: 2026-12-02
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

from plait.eventstore.ddl_0006 import (
    APPEND_FUNCTION_0006,
    APPEND_SIGNATURE_0006,
    PG_PROJECT_RUNS_GUARD,
    PROJECT_PREFIX,
    PROJECT_RUNS_TABLE,
    SQLITE_PROJECT_RUNS_GUARD,
)

revision = "0006_fenced_leases"
down_revision = "0005_leaner_append"
branch_labels = None
depends_on = None


def upgrade() -> None:
    bind = op.get_bind()
    with op.batch_alter_table("plait_run_leases") as batch:
        batch.add_column(sa.Column("epoch", sa.BigInteger(), nullable=False, server_default="0"))
    # Expiry times of older plait were each host's own clock: let them all lapse.
    op.execute("UPDATE plait_run_leases SET expires_at = 0")
    op.execute(PROJECT_RUNS_TABLE)
    active: dict[str, str] = {}
    rows = bind.execute(
        sa.text(
            "SELECT stream_id, type, data FROM plait_events WHERE type IN "
            "('RunStarted', 'RunEnded') AND stream_id LIKE 'project-%' ORDER BY position"
        )
    )
    for stream_id, type_, data in rows:
        project = stream_id[len(PROJECT_PREFIX) :]
        run_id = json.loads(data).get("run_id")
        if type_ == "RunStarted" and run_id:
            active[project] = str(run_id)
        elif active.get(project) == run_id:
            del active[project]
    if active:
        bind.execute(
            sa.text("INSERT INTO plait_active_runs (project_id, run_id) VALUES (:p, :r)"),
            [{"p": project, "r": run_id} for project, run_id in active.items()],
        )
    if bind.dialect.name == "postgresql":
        op.execute(APPEND_FUNCTION_0006)
        op.execute(PG_PROJECT_RUNS_GUARD)
    else:
        for statement in SQLITE_PROJECT_RUNS_GUARD:
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER plait_events_project_runs ON plait_events")
        op.execute("DROP FUNCTION plait_project_runs()")
        op.execute(f"DROP FUNCTION {APPEND_SIGNATURE_0006}")
    else:
        op.execute("DROP TRIGGER plait_events_project_runs")
    op.execute("DROP TABLE plait_active_runs")
    with op.batch_alter_table("plait_run_leases") as batch:
        batch.drop_column("epoch")
