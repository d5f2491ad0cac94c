"""Run status: one row per run holding the folded RunState, so a status read is one row."""

from __future__ import annotations

import json
from collections.abc import Sequence

from sqlalchemy import Connection, Table, insert, select, update

from plait.domain.events import RunCreated
from plait.domain.run import RunState
from plait.eventstore import StoredEvent
from plait.projections.codec import decode, run_id_of
from plait.projections.tables import run_status


class RunStatusProjection:
    name = "run_status"
    tables: tuple[Table, ...] = (run_status,)

    def apply(self, connection: Connection, events: Sequence[StoredEvent]) -> None:
        # Fold the page in memory and write each touched run once.
        states: dict[str, RunState] = {}
        created: dict[str, int] = {}
        last: dict[str, int] = {}
        for stored in events:
            run_id = run_id_of(stored)
            if run_id is None:
                continue
            event = decode(stored)
            state = states.get(run_id)
            if state is None:
                if isinstance(event, RunCreated):
                    state = RunState()
                    created[run_id] = stored.position
                else:
                    state = _load(connection, run_id)
                states[run_id] = state
            state.apply(event, stored.recorded_text)
            last[run_id] = stored.position
        for run_id, state in states.items():
            _save(connection, state, created.get(run_id), last[run_id])


def _load(connection: Connection, run_id: str) -> RunState:
    row = connection.execute(
        select(run_status.c.state).where(run_status.c.run_id == run_id)
    ).scalar_one_or_none()
    return RunState() if row is None else RunState.from_json_dict(json.loads(row))


def _save(connection: Connection, state: RunState, created: int | None, position: int) -> None:
    values = {
        "project_id": state.project_id,
        "status": state.status or "created",
        "position": position,
        "state": json.dumps(state.to_json_dict(), separators=(",", ":")),
    }
    if created is not None:
        connection.execute(
            insert(run_status).values(run_id=state.run_id, created_position=created, **values)
        )
    else:
        connection.execute(
            update(run_status).where(run_status.c.run_id == state.run_id).values(**values)
        )
