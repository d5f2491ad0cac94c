"""The audit timeline: which project and run each event belongs to, and when it happened."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, Table, insert, select

from plait.eventstore import StoredEvent
from plait.projections.codec import project_id_of, run_id_of
from plait.projections.tables import timeline

CACHED_RUNS = 1000


class TimelineProjection:
    name = "timeline"
    tables: tuple[Table, ...] = (timeline,)

    def __init__(self) -> None:
        # run -> project, kept between pages (a run never changes project): looking it up
        # scans the run's rows, which would make each page cost more as the run grows.
        self._owners: dict[str, str | None] = {}

    def apply(self, connection: Connection, events: Sequence[StoredEvent]) -> None:
        if len(self._owners) > CACHED_RUNS:
            self._owners.clear()
        owners = self._owners
        rows = []
        for stored in events:
            run_id = run_id_of(stored)
            project_id = project_id_of(stored)
            if run_id is not None:
                if stored.type == "RunCreated":
                    owners[run_id] = str(stored.data.get("project_id"))
                elif owners.get(run_id) is None:  # unknown, or not projected yet: look
                    owners[run_id] = _owner(connection, run_id)
                project_id = owners[run_id]
            rows.append(
                {
                    "position": stored.position,
                    "project_id": project_id,
                    "run_id": run_id,
                    "type": stored.type,
                    "recorded_at": stored.recorded_text,
                }
            )
        if rows:
            connection.execute(insert(timeline), rows)


def _owner(connection: Connection, run_id: str) -> str | None:
    return connection.execute(
        select(timeline.c.project_id)
        .where(timeline.c.run_id == run_id, timeline.c.type == "RunCreated")
        .limit(1)
    ).scalar_one_or_none()
