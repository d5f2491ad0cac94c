"""Run status: one row per run, holding a snapshot of the folded RunState and how far the run
has gone past it, so a status read is one row plus the few events after the snapshot.

An event costs the same whatever the size of its run. The projection keeps the state of the
runs it folds in memory between pages (while the row shows that nobody else moved it), and
writes the whole snapshot only when the run's status changes, or once the run has had as
many events since the last snapshot as it has tasks (at least SNAPSHOT_EVERY); every other
page updates the row's status and position only. A reader folds the events after the
snapshot onto it (`snapshot_state`): at most about one event per task, which costs what
decoding the snapshot does. A rebuild is still truncate + replay.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, Table, Text, insert, select, type_coerce, update

from plait.domain.events import RunCreated
from plait.domain.run import RunState
from plait.eventstore import StoredEvent
from plait.eventstore.schema import events
from plait.projections.codec import decode, run_id_of, run_stream
from plait.projections.tables import run_status

SNAPSHOT_EVERY = 32  # events since the last snapshot, at least; else one per task
SNAPSHOT_VERSION_KEY = "projected_version"  # the last stream version the snapshot holds
CACHED_RUNS = 64  # runs whose state stays in memory between pages


@dataclass(slots=True)
class _Run:
    state: RunState
    position: int = 0  # the last event applied, as the row's position says
    version: int = 0  # its stream version
    snapshot_version: int = 0
    status: str = ""


class RunStatusProjection:
    name = "run_status"
    tables: tuple[Table, ...] = (run_status,)

    def __init__(self) -> None:
        self._runs: dict[str, _Run] = {}

    def apply(self, connection: Connection, events: Sequence[StoredEvent]) -> None:
        touched: dict[str, _Run] = {}
        created: dict[str, int] = {}
        try:
            for stored in events:
                run_id = run_id_of(stored)
                if run_id is None:
                    continue
                event = decode(stored)
                run = touched.get(run_id)
                if run is None:
                    if isinstance(event, RunCreated):
                        run = _Run(RunState())
                        created[run_id] = stored.position
                    else:
                        run = self._current(connection, run_id)
                    touched[run_id] = run
                run.state.apply(event, stored.recorded_text)
                run.position, run.version = stored.position, stored.stream_version
            for run_id, run in touched.items():
                _save(connection, run, created.get(run_id))
        except BaseException:
            for run_id in touched:  # half-folded, or the transaction will not commit
                self._runs.pop(run_id, None)
            raise
        for run_id, run in touched.items():
            self._runs.pop(run_id, None)
            self._runs[run_id] = run  # the most recent last
        while len(self._runs) > CACHED_RUNS:
            del self._runs[next(iter(self._runs))]

    def _current(self, connection: Connection, run_id: str) -> _Run:
        """The run as its row holds it: from memory if the row has not moved since this
        projection wrote it, else its snapshot and the events after it."""
        row = connection.execute(
            select(run_status.c.position, run_status.c.status).where(run_status.c.run_id == run_id)
        ).first()
        if row is None:
            return _Run(RunState())
        cached = self._runs.get(run_id)
        if cached is not None and cached.position == row.position:
            return cached
        text = connection.execute(
            select(run_status.c.state).where(run_status.c.run_id == run_id)
        ).scalar_one()
        state, snapshot_version, version = _fold_tail(connection, run_id, text, row.position)
        if snapshot_version is None:  # an older row: write a snapshot of the new kind next
            return _Run(state, row.position, version)
        return _Run(state, row.position, version, snapshot_version, row.status)


def snapshot_state(connection: Connection, run_id: str, text: str, position: int) -> RunState:
    """The run's state at `position` (its row's), from the row's snapshot `text`."""
    return _fold_tail(connection, run_id, text, position)[0]


def _fold_tail(
    connection: Connection, run_id: str, text: str, position: int
) -> tuple[RunState, int | None, int]:
    """(state, the snapshot's stream version, the version reached)."""
    data = json.loads(text)
    state = RunState.from_json_dict(data)
    if SNAPSHOT_VERSION_KEY not in data:
        return state, None, 0  # written before snapshots lagged: it holds every event
    snapshot_version = version = int(data[SNAPSHOT_VERSION_KEY])
    columns = [type_coerce(c, Text) if c.name == "recorded_at" else c for c in events.c]
    tail = connection.execute(
        select(*columns)
        .where(
            events.c.stream_id == run_stream(run_id),
            events.c.stream_version > snapshot_version,
            events.c.position <= position,
        )
        .order_by(events.c.stream_version)
    )
    for row in tail:
        stored = StoredEvent(*row)
        state.apply(decode(stored), stored.recorded_text)
        version = stored.stream_version
    return state, snapshot_version, version


def _save(connection: Connection, run: _Run, created: int | None) -> None:
    status = run.state.status or "created"
    values: dict[str, object] = {
        "project_id": run.state.project_id,
        "status": status,
        "position": run.position,
    }
    due = max(SNAPSHOT_EVERY, len(run.state.tasks))
    if created is not None or status != run.status or run.version - run.snapshot_version >= due:
        snapshot = {**run.state.to_json_dict(), SNAPSHOT_VERSION_KEY: run.version}
        values["state"] = json.dumps(snapshot, separators=(",", ":"))
        run.snapshot_version = run.version
    run.status = status
    if created is not None:
        connection.execute(
            insert(run_status).values(run_id=run.state.run_id, created_position=created, **values)
        )
    else:
        connection.execute(
            update(run_status).where(run_status.c.run_id == run.state.run_id).values(**values)
        )
