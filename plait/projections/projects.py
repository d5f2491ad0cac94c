"""Projects: registration (and deletion), the accepted plan, and which run is active."""

from __future__ import annotations

import json
from collections.abc import Sequence

from sqlalchemy import Connection, Table, delete, insert, update

from plait.domain.events import (
    PlanAccepted,
    ProjectDeleted,
    ProjectRegistered,
    RunEnded,
    RunStarted,
)
from plait.eventstore import StoredEvent
from plait.projections.codec import decode, project_id_of
from plait.projections.tables import projects


class ProjectsProjection:
    name = "projects"
    tables: tuple[Table, ...] = (projects,)

    def apply(self, connection: Connection, events: Sequence[StoredEvent]) -> None:
        for stored in events:
            if project_id_of(stored) is None:
                continue
            event = decode(stored)
            where = projects.c.project_id == getattr(event, "project_id", None)
            if isinstance(event, ProjectRegistered):
                connection.execute(
                    insert(projects).values(
                        project_id=event.project_id,
                        name=event.name,
                        repo_path=event.repo_path,
                        registered_at=stored.recorded_text,
                        position=stored.position,
                    )
                )
            elif isinstance(event, ProjectDeleted):
                connection.execute(delete(projects).where(where))
            elif isinstance(event, PlanAccepted):
                plan = {
                    "plan": event.plan,
                    "batches": list(event.batches),
                    "mode": event.mode,
                    "reason": event.reason,
                    "source": event.source,
                    "accepted_at": stored.recorded_text,
                    "position": stored.position,
                }
                connection.execute(
                    update(projects).where(where).values(plan=json.dumps(plan, default=list))
                )
            elif isinstance(event, RunStarted):
                connection.execute(
                    update(projects)
                    .where(where)
                    .values(active_run_id=event.run_id, last_run_id=event.run_id)
                )
            elif isinstance(event, RunEnded):
                connection.execute(
                    update(projects)
                    .where(where & (projects.c.active_run_id == event.run_id))
                    .values(active_run_id=None)
                )
