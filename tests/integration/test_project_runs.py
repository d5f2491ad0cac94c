"""One active run per project, enforced by the store in the append's transaction, whoever
appends and whatever happened to their leases. On SQLite and PostgreSQL alike."""

from __future__ import annotations

import subprocess
import sys
import uuid

import pytest
from sqlalchemy import text

from plait.domain.events import RunEnded, RunStarted
from plait.eventstore import ConcurrencyError, FencedOff, ProjectRunConflict, SqlEventStore
from plait.eventstore.leases import LeaseStore
from plait.projections.codec import encode, project_stream


def project_id() -> str:
    return f"p{uuid.uuid4().hex[:10]}"


def start(store: SqlEventStore, project: str, run: str, **kwargs: object) -> None:
    event = encode(RunStarted(project_id=project, run_id=run))
    store.append(project_stream(project), [event], None, **kwargs)  # type: ignore[arg-type]


def end(store: SqlEventStore, project: str, run: str, **kwargs: object) -> None:
    event = encode(RunEnded(project_id=project, run_id=run, outcome="completed"))
    store.append(project_stream(project), [event], None, **kwargs)  # type: ignore[arg-type]


def test_a_start_while_another_run_is_active_is_refused_even_without_an_expected_version(
    store: SqlEventStore,
) -> None:
    project = project_id()
    start(store, project, "r1")
    with pytest.raises(ProjectRunConflict, match="active run") as refused:
        start(store, project, "r2")
    assert isinstance(refused.value, ConcurrencyError)  # the path that answers HTTP 409
    assert [e.type for e in store.read_stream(project_stream(project))] == ["RunStarted"]
    end(store, project, "r1")
    start(store, project, "r2")  # the project is idle again


def test_a_second_end_of_one_run_is_refused(store: SqlEventStore) -> None:
    project = project_id()
    start(store, project, "r1")
    end(store, project, "r1")
    with pytest.raises(ProjectRunConflict, match="not the project's active run"):
        end(store, project, "r1")
    start(store, project, "r1")  # a resumed run starts again, and ends once more
    end(store, project, "r1")
    assert len(store.read_stream(project_stream(project))) == 4


def test_an_end_of_a_run_that_is_not_the_active_one_is_refused(store: SqlEventStore) -> None:
    project = project_id()
    start(store, project, "r1")
    with pytest.raises(ProjectRunConflict):
        end(store, project, "r2")
    other = project_id()
    with pytest.raises(ProjectRunConflict):
        end(store, other, "r1")  # r1 is another project's run


def test_a_retried_start_is_answered_with_its_stored_position(store: SqlEventStore) -> None:
    project = project_id()
    event = encode(RunStarted(project_id=project, run_id="r1"))
    first = store.append(project_stream(project), [event], 0)
    assert store.append(project_stream(project), [event], 0) == first
    assert store.append(project_stream(project), [event], None) == first


def test_a_start_in_another_process_keeps_this_one_out(store: SqlEventStore) -> None:
    project = project_id()
    script = (
        "import sys\n"
        "from plait.domain.events import RunStarted\n"
        "from plait.eventstore import SqlEventStore\n"
        "from plait.projections.codec import encode, project_stream\n"
        "store = SqlEventStore(sys.argv[1])\n"
        "e = encode(RunStarted(project_id=sys.argv[2], run_id='theirs'))\n"
        "store.append(project_stream(sys.argv[2]), [e], None)\n"
        "store.close()\n"
    )
    url = store.url.render_as_string(hide_password=False)
    subprocess.run(
        [sys.executable, "-c", script, url, project], check=True, timeout=60, capture_output=True
    )
    with pytest.raises(ProjectRunConflict, match=r"theirs|active run"):
        start(store, project, "mine")


def test_a_driver_whose_lease_was_expired_by_hand_can_neither_end_its_run_nor_let_a_second_in(
    store: SqlEventStore,
) -> None:
    project = project_id()
    deposed, taker = LeaseStore(store), LeaseStore(store)
    old = deposed.acquire("r1")
    assert old is not None
    start(store, project, "r1", fence=old)
    deposed.expire("r1")  # a partition, a pause, or a skewed clock: the lease is gone
    assert taker.acquire("r1") is not None
    with pytest.raises(FencedOff):
        end(store, project, "r1", fence=old)  # the deposed driver's RunEnded(failed)
    with pytest.raises(ProjectRunConflict):
        start(store, project, "r2")  # the project still has its active run
    types = [e.type for e in store.read_stream(project_stream(project))]
    assert types == ["RunStarted"]


def test_the_upgrade_finds_the_runs_already_active_in_older_history(store_url: str) -> None:
    from alembic import command

    from plait.eventstore import migrate

    store = SqlEventStore(store_url)
    project, idle = project_id(), project_id()
    try:
        with store.engine.connect() as connection:
            config = migrate.alembic_config()
            config.attributes["connection"] = connection
            command.downgrade(config, "0005_leaner_append")
            connection.commit()
            # What an older plait stored: no table of active runs yet.
            start(store, project, "old")
            start(store, idle, "done")
            end(store, idle, "done")
            command.upgrade(config, "head")
            connection.commit()
            active = connection.execute(
                text("SELECT project_id, run_id FROM plait_active_runs")
            ).all()
        assert (project, "old") in [tuple(row) for row in active]
        with pytest.raises(ProjectRunConflict):
            start(store, project, "new")
        start(store, idle, "next")
    finally:
        store.close()
