"""Read models for the CLI and the HTTP service. Reads only; nothing here writes.

Status reads are one row each, however long the history. History reads replay a run's own
stream up to a position, which is what an audit asks for: the state exactly as it was then.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from plait.domain.describe import describe
from plait.domain.run import RunState
from plait.domain.statuses import TaskStatus
from plait.domain.times import seconds_between
from plait.eventstore import EventStore
from plait.eventstore.hashing import timestamp_text
from plait.eventstore.schema import events
from plait.projections.codec import decode, run_stream
from plait.projections.run_status import snapshot_state
from plait.projections.tables import projects, run_status, timeline


class ReadModels:
    def __init__(self, store: EventStore) -> None:
        self.store = store

    def run_status(self, run_id: str) -> dict[str, Any] | None:
        state = self.run_state(run_id)
        return None if state is None else state.status_view()

    def run_state(self, run_id: str) -> RunState | None:
        """The run's folded state, as its projection row holds it."""
        with self.store.connect() as conn:
            row = conn.execute(
                select(run_status.c.state, run_status.c.position).where(
                    run_status.c.run_id == run_id
                )
            ).first()
            return None if row is None else snapshot_state(conn, run_id, row.state, row.position)

    def runs(
        self,
        project_id: str | None = None,
        limit: int = 50,
        *,
        statuses: Collection[str] = (),
    ) -> list[dict[str, Any]]:
        """The newest runs first, each with its project's path, its times and how many of its
        tasks landed."""
        query = (
            select(
                run_status.c.run_id, run_status.c.project_id, run_status.c.status,
                run_status.c.created_position, run_status.c.state, run_status.c.position,
                projects.c.repo_path,
            )
            .select_from(
                run_status.outerjoin(projects, projects.c.project_id == run_status.c.project_id)
            )
            .order_by(run_status.c.created_position.desc())
            .limit(limit)
        )  # fmt: skip
        if project_id is not None:
            query = query.where(run_status.c.project_id == project_id)
        if statuses:
            query = query.where(run_status.c.status.in_(list(statuses)))
        with self.store.connect() as conn:
            rows = [dict(row._mapping) for row in conn.execute(query)]
            for row in rows:
                text, position = row.pop("state"), row.pop("position")
                row["state"] = snapshot_state(conn, row["run_id"], text, position)
        return [_run_summary(row) for row in rows]

    def project(self, project_id: str) -> dict[str, Any] | None:
        with self.store.connect() as conn:
            row = conn.execute(select(projects).where(projects.c.project_id == project_id)).first()
        return None if row is None else _project(dict(row._mapping))

    def projects(self) -> list[dict[str, Any]]:
        with self.store.connect() as conn:
            rows = conn.execute(select(projects).order_by(projects.c.position)).all()
        return [_project(dict(row._mapping)) for row in rows]

    def position_at(self, moment: datetime) -> int:
        """The last position recorded at or before `moment`."""
        with self.store.connect() as conn:
            value = conn.execute(
                select(func.max(timeline.c.position)).where(
                    timeline.c.recorded_at <= timestamp_text(moment)
                )
            ).scalar_one_or_none()
        return int(value or 0)

    def timeline(
        self,
        *,
        project_id: str | None = None,
        run_id: str | None = None,
        until: int | None = None,
        limit: int = 1000,
    ) -> list[dict[str, Any]]:
        """Each event with its payload (`data`) and its essentials in one line (`summary`)."""
        query = (
            select(timeline, events.c.data)
            .join(events, events.c.position == timeline.c.position)
            .order_by(timeline.c.position)
            .limit(limit)
        )
        if project_id is not None:
            query = query.where(timeline.c.project_id == project_id)
        if run_id is not None:
            query = query.where(timeline.c.run_id == run_id)
        if until is not None:
            query = query.where(timeline.c.position <= until)
        with self.store.connect() as conn:
            rows = [dict(row._mapping) for row in conn.execute(query)]
        for row in rows:
            row["data"] = json.loads(row["data"])
            row["summary"] = describe(row["type"], row["data"])
        return rows

    def run_state_at(self, run_id: str, until: int | None = None) -> dict[str, Any] | None:
        """The run's status as it was once every event up to `until` had happened."""
        state: RunState | None = None
        for stored in self.store.read_stream(run_stream(run_id)):
            if until is not None and stored.position > until:
                break
            state = (state or RunState()).apply(decode(stored), stored.recorded_text)
        return None if state is None else state.status_view()


def _run_summary(row: dict[str, Any]) -> dict[str, Any]:
    state: RunState = row.pop("state")
    tasks = state.tasks.values()
    row.update(
        base_branch=state.base_branch,
        started_at=state.started_at or state.created_at,
        ended_at=state.ended_at,
        duration=seconds_between(state.started_at or state.created_at, state.ended_at),
        tasks_total=len(tasks),
        tasks_landed=sum(1 for t in tasks if t.status == TaskStatus.LANDED),
        landable=state.landable,
        error=state.error,
    )
    row["repo_path"] = row.get("repo_path") or state.repo_path
    return row


def _project(row: dict[str, Any]) -> dict[str, Any]:
    plan = row.pop("plan")
    row["plan"] = json.loads(plan) if plan else None
    return row
