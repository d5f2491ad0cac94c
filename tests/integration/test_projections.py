"""Projections over SQLite and PostgreSQL: status, projects and the audit timeline."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Sequence
from pathlib import Path

from plait.domain.events import DomainEvent
from plait.domain.run import RunState
from plait.eventstore import SqlEventStore
from plait.projections import Projector, ReadModels, all_projections
from plait.projections.codec import decode, encode, run_stream, stream_of
from tests.histories import project_run_end, project_run_start, registered, run_events


def uid(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def store_events(store: SqlEventStore, events: Sequence[DomainEvent]) -> int:
    last = 0
    for event in events:
        [last] = store.append(stream_of(event), [encode(event)], expected_version=None)
    return last


def a_project_with_a_run(store: SqlEventStore, outputs: int = 2) -> tuple[str, str]:
    project, run = uid("p"), uid("r")
    batches = [["a", "b", "c"], ["d"]]
    store_events(store, registered(project, batches))
    store_events(store, [project_run_start(project, run)])
    store_events(store, run_events(project, run, batches, outputs))
    store_events(store, [project_run_end(project, run)])
    return project, run


def replayed(store: SqlEventStore, run_id: str) -> dict[str, object]:
    state = RunState()
    for stored in store.read_stream(run_stream(run_id)):
        state.apply(decode(stored), stored.recorded_text)
    return state.status_view()


def test_the_run_status_equals_a_replay_of_the_runs_stream(store: SqlEventStore) -> None:
    _project, run = a_project_with_a_run(store)
    Projector(store, all_projections()).catch_up()
    status = ReadModels(store).run_status(run)
    assert status == replayed(store, run)
    assert status is not None
    assert (status["status"], status["batches_total"], status["completed_batches"]) == (
        "landed",
        2,
        2,
    )
    assert status["execution_mode"] == "parallel"


def test_a_project_shows_its_plan_and_its_active_run_until_the_run_ends(
    store: SqlEventStore,
) -> None:
    project, run = uid("p"), uid("r")
    store_events(store, registered(project, [["a", "b"]]))
    store_events(store, [project_run_start(project, run)])
    projector = Projector(store, all_projections())
    projector.catch_up()
    shown = ReadModels(store).project(project)
    assert shown is not None
    assert shown["active_run_id"] == run
    assert shown["plan"]["mode"] == "parallel"
    assert shown["plan"]["batches"][0]["task_ids"] == ["a", "b"]
    store_events(store, [project_run_end(project, run)])
    projector.catch_up()
    ended = ReadModels(store).project(project)
    assert ended is not None
    assert (ended["active_run_id"], ended["last_run_id"]) == (None, run)


def test_the_timeline_lists_a_projects_events_and_stops_at_until(store: SqlEventStore) -> None:
    project, run = a_project_with_a_run(store)
    a_project_with_a_run(store)  # another project's history must not leak in
    Projector(store, all_projections()).catch_up()
    models = ReadModels(store)
    everything = models.timeline(project_id=project)
    assert everything[0]["type"] == "ProjectRegistered"
    assert everything[-1]["type"] == "RunEnded"
    assert {row["project_id"] for row in everything} == {project}
    middle = everything[len(everything) // 2]["position"]
    assert all(
        row["position"] <= middle for row in models.timeline(project_id=project, until=middle)
    )
    assert [r["run_id"] for r in models.timeline(run_id=run)] == [run] * len(
        store.read_stream(run_stream(run))
    )


def test_the_status_at_a_past_position_is_the_status_as_it_was_then(
    store: SqlEventStore,
) -> None:
    _project, run = a_project_with_a_run(store)
    Projector(store, all_projections()).catch_up()
    stream = store.read_stream(run_stream(run))
    first_batch_landed = next(e.position for e in stream if e.type == "BatchLanded")
    then = ReadModels(store).run_state_at(run, until=first_batch_landed)
    assert then is not None
    assert then["status"] == "running"
    assert [b["status"] for b in then["batches"]] == ["landed", "pending"]
    assert ReadModels(store).run_state_at(run) == ReadModels(store).run_status(run)


def test_a_rebuilt_projection_equals_the_incrementally_built_one(store: SqlEventStore) -> None:
    runs = [a_project_with_a_run(store, outputs=5)[1] for _ in range(8)]
    incremental = Projector(store, all_projections())
    # Apply the history in pages of random sizes, as a live projector would see it.
    rng = random.Random(7)
    after = 0
    while page := store.read_all(after, rng.randint(1, 40)):
        incremental.apply(page)
        after = page[-1].position
    models = ReadModels(store)
    before = {run: models.run_status(run) for run in runs}
    timeline_before = models.timeline(limit=100_000)
    projects_before = models.projects()

    Projector(store, all_projections()).rebuild()
    assert {run: models.run_status(run) for run in runs} == before
    assert models.timeline(limit=100_000) == timeline_before
    assert models.projects() == projects_before


def test_a_projector_stopped_mid_stream_catches_up_without_applying_anything_twice(
    store: SqlEventStore,
) -> None:
    _project, run = a_project_with_a_run(store)
    history = store.read_all(0, 100_000)
    Projector(store, all_projections()).apply(history[: len(history) // 3])
    # A new process starts from the checkpoints, and a second one races it.
    Projector(store, all_projections()).catch_up()
    Projector(store, all_projections()).catch_up()
    models = ReadModels(store)
    assert models.run_status(run) == replayed(store, run)
    assert len(models.timeline(limit=100_000)) == len(history)


async def test_a_following_projector_applies_events_as_they_are_stored(
    store: SqlEventStore,
) -> None:
    projector = Projector(store, all_projections())
    follower = asyncio.create_task(projector.follow())
    try:
        _project, run = await asyncio.to_thread(a_project_with_a_run, store)
        await asyncio.wait_for(projector.wait_for(store.last_position()), timeout=30)
        status = ReadModels(store).run_status(run)
        assert status is not None
        assert status["status"] == "landed"
    finally:
        follower.cancel()


# --- the run status costs the same per event whatever the size of the run -----------------


def a_run_in_flight(store: SqlEventStore, tasks: int, outputs: int) -> str:
    """A run of `tasks` tasks in two batches, stored up to its end minus the last events."""
    project, run = uid("p"), uid("r")
    half = tasks // 2
    batches = [[f"t{i}" for i in range(half)], [f"t{i}" for i in range(half, tasks)]]
    store_events(store, registered(project, batches))
    store_events(store, [project_run_start(project, run)])
    store.append(
        run_stream(run),
        [encode(e) for e in run_events(project, run, batches, outputs)],
        expected_version=None,
    )
    return run


def snapshot_texts(store: SqlEventStore, run_id: str) -> str:
    from sqlalchemy import select

    from plait.projections.tables import run_status

    with store.connect() as conn:
        text: str = conn.execute(
            select(run_status.c.state).where(run_status.c.run_id == run_id)
        ).scalar_one()
    return text


def replayed_until(store: SqlEventStore, run_id: str, position: int) -> dict[str, object]:
    state = RunState()
    for stored in store.read_stream(run_stream(run_id)):
        if stored.position <= position:
            state.apply(decode(stored), stored.recorded_text)
    return state.status_view()


def test_after_every_event_the_status_is_the_replay_though_the_snapshot_is_written_rarely(
    store: SqlEventStore,
) -> None:
    run = a_run_in_flight(store, tasks=24, outputs=2)
    projector = Projector(store, all_projections())
    models = ReadModels(store)
    history = store.read_all(0, 100_000)
    snapshots = set()
    for stored in history:
        projector.apply([stored])  # one event per page, as a live projector mostly sees them
        if stored.stream_id == run_stream(run):
            assert models.run_status(run) == replayed_until(store, run, stored.position)
            snapshots.add(snapshot_texts(store, run))
    run_events_count = sum(1 for e in history if e.stream_id == run_stream(run))
    # Rewriting the whole state on every event is what made each event cost O(tasks).
    assert len(snapshots) < run_events_count / 10, (len(snapshots), run_events_count)
    listed = {r["run_id"]: r for r in models.runs()}[run]
    assert (listed["status"], listed["tasks_landed"], listed["tasks_total"]) == ("landed", 24, 24)


def test_a_run_moved_by_another_projector_is_folded_from_its_row_not_from_memory(
    store: SqlEventStore,
) -> None:
    """Two processes projecting one database take turns: each must see the other's pages."""
    run = a_run_in_flight(store, tasks=12, outputs=2)
    first, second = Projector(store, all_projections()), Projector(store, all_projections())
    models = ReadModels(store)
    history = store.read_all(0, 100_000)
    rng = random.Random(11)
    at = 0
    while at < len(history):
        size = rng.randint(1, 7)
        rng.choice([first, second]).apply(history[at : at + size])
        at += size
        last = history[min(at, len(history)) - 1].position
        assert models.run_status(run) == replayed_until(store, run, last)
    assert models.run_status(run) == replayed(store, run)


def test_a_failed_page_leaves_nothing_of_it_in_the_status(store: SqlEventStore) -> None:
    """An event the fold refuses rolls its page back; the projection must not remember the
    half-folded page either, or the next page would build on events that were never kept."""
    import pytest

    from plait.domain.errors import InvalidTransition
    from plait.domain.events import BatchLanded

    run = a_run_in_flight(store, tasks=4, outputs=1)
    projector = Projector(store, all_projections())
    history = store.read_all(0, 100_000)
    cut = next(i for i, e in enumerate(history) if e.type == "TaskStarted")
    projector.apply(history[:cut])
    bogus = BatchLanded(run_id=run, batch_id=99, before="a", after="b")  # no batch 99
    [position] = store.append(run_stream(run), [encode(bogus)], expected_version=None)
    [stored_bogus] = store.read_all(position - 1, 1)
    with pytest.raises(InvalidTransition):
        projector.apply([*history[cut : cut + 1], stored_bogus])
    assert ReadModels(store).run_status(run) == replayed_until(
        store, run, history[cut - 1].position
    )
    projector.apply(history[cut:])  # the same projector goes on from what was kept
    assert ReadModels(store).run_status(run) == replayed_until(store, run, history[-1].position)


async def test_a_service_that_does_not_follow_leaves_the_read_models_current_at_close(
    tmp_path: Path,
) -> None:
    """`plait run` does not project while it runs (it shows its run from memory); its last
    act is one catch-up, so whatever reads the database next finds the run as it ended."""
    from plait.domain.plan.parsing import plan_from_mapping
    from plait.execution.service import Plait
    from plait.execution.settings import Settings
    from tests.gitrepo import make_repo

    root = tmp_path
    store = SqlEventStore(f"sqlite:///{root / 'plait.db'}")
    settings = Settings(log_root=root / "logs", follow_projections=False)
    service = Plait(store, settings)
    try:
        await service.start()
        project = await service.register_project(str(make_repo(root / "repo")))
        plan = plan_from_mapping({"tasks": [{"id": "a", "run": "echo a > a.txt"}]})
        await service.submit_plan(project, plan, source="test")
        run = await service.start_run(project)
        assert (await service.wait_run(run)).status == "landed"
        projector = Projector(store, all_projections())
        assert projector.checkpoint("run_status") < store.last_position(), "it followed"
    finally:
        await service.close()
    try:
        checkpoints = {p.name: projector.checkpoint(p.name) for p in all_projections()}
        assert set(checkpoints.values()) == {store.last_position()}
        status = ReadModels(store).run_status(run)
        assert status is not None
        assert status["status"] == "landed"
    finally:
        store.close()
