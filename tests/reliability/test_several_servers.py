"""Several `plait serve` processes on one PostgreSQL, as different hosts or containers (each
in its own UTS and PID namespace): one driver per run, automatic takeover, stops that reach
the driver, and a deposed driver that writes nothing. Leases are short here (servers.LEASES:
TTL 4 s, renewal every 1 s, a takeover pass every 0.5 s)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from plait.domain.ids import result_branch
from plait.eventstore import SqlEventStore
from plait.eventstore.leases import LeaseStore
from tests.reliability import servers
from tests.reliability.servers import (
    actor,
    attempts_alive,
    ended,
    events,
    git,
    make_project,
    merges,
    project_events,
    register,
    start,
    started,
    wait_for,
)

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.slow,
    pytest.mark.skipif(not servers.unshare_works(), reason="needs root and unshare"),
]


@pytest.fixture
def store(pg_schema_url: str) -> Iterator[SqlEventStore]:
    opened = SqlEventStore(pg_schema_url)  # the schema, before any server opens it
    try:
        yield opened
    finally:
        opened.close()


def lease_epoch(store: SqlEventStore, run_id: str) -> int:
    from sqlalchemy import text

    with store.connect() as conn:
        row = conn.execute(
            text("SELECT epoch FROM plait_run_leases WHERE run_id = :r"), {"r": run_id}
        ).first()
    return 0 if row is None else int(row[0])


def landed_each_task_once(repo: Path, tasks: str = "abcd") -> bool:
    found = merges(repo)
    return all(found.count(f"plait: merge task {t}") == 1 for t in tasks)


@pytest.mark.parametrize("schedule", ["batch", "ready"])
def test_a_sigkilled_driver_is_taken_over_by_another_server_on_its_own_and_every_task_lands_once(
    pg_schema_url: str, store: SqlEventStore, tmp_path: Path, schedule: str
) -> None:
    repo, gate, plan = make_project(tmp_path, schedule)
    # One hostname, two PID namespaces: the driver's PID means nothing to the other. A third
    # server competes for the takeover: exactly one of the two wins.
    with servers.servers(pg_schema_url, tmp_path, "twin", "twin", "other") as (
        first,
        second,
        _third,
    ):
        project_id = register(first, repo, plan)
        run_id = start(first, project_id)
        wait_for("batch 1 running", lambda: len(started(gate)) == 3)
        # The other server looks for lapsed leases and leaves this live one alone.
        checks = second.metric("plait_takeover_checks")
        wait_for(
            "three takeover passes", lambda: second.metric("plait_takeover_checks") >= checks + 3
        )
        assert lease_epoch(store, run_id) == 1
        assert "RunResumed" not in [e.type for e in events(store, run_id)]

        first.kill_plait()
        # No client call from here on: the second server takes the run over by itself.
        resumed = wait_for(
            "the takeover",
            lambda: [e for e in events(store, run_id) if e.type == "RunResumed"],
        )
        assert len(resumed) == 1
        (gate / "release").write_text("")
        wait_for("the run's end", lambda: ended(store, project_id, run_id))
        run = events(store, run_id)
        ends = ended(store, project_id, run_id)
    assert [e.data["outcome"] for e in ends] == ["landed"], servers.dump(run)
    assert lease_epoch(store, run_id) == 2  # one acquisition after the driver's: one winner
    assert list(gate.glob("*.overlap")) == []  # no attempt ran beside another of its task
    assert landed_each_task_once(repo)
    assert [e.type for e in run].count("TaskInterrupted") == 3
    assert attempts_alive(gate) == []


def test_a_ready_run_taken_over_between_rounds_lands_the_rest_once_on_the_tip_already_landed(
    pg_schema_url: str, store: SqlEventStore, tmp_path: Path
) -> None:
    # No batches: c starts once a has landed, while b still runs. The driver dies then.
    repo, gate, plan = make_project(tmp_path, "ready", {"a": [], "b": [], "c": ["a"]})
    with servers.servers(pg_schema_url, tmp_path, "alpha", "beta") as (first, _second):
        project_id = register(first, repo, plan)
        run_id = start(first, project_id)
        wait_for("a and b running", lambda: set(started(gate)) == {"a", "b"})
        (gate / "a.release").write_text("")
        wait_for("c running on a's landing", lambda: set(started(gate)) == {"a", "b", "c"})
        result = result_branch(run_id)  # where a round's green merge lands until the end
        landed_before = git(repo, "rev-parse", result).strip()
        assert "plait: merge task a" in git(repo, "log", "--format=%s", result)
        first.kill_plait()
        wait_for("the takeover", lambda: any(e.type == "RunResumed" for e in events(store, run_id)))
        (gate / "release").write_text("")
        ends = wait_for("the run's end", lambda: ended(store, project_id, run_id))
        run = events(store, run_id)
    assert [e.data["outcome"] for e in ends] == ["landed"], servers.dump(run)
    assert landed_each_task_once(repo, "abc")
    # What had landed stays: the new driver built on it, and main moved on from it.
    git(repo, "merge-base", "--is-ancestor", landed_before, "main")
    types = [e.type for e in run]
    assert types.count("TaskInterrupted") == 2  # b and c; a's landing is not redone
    assert list(gate.glob("*.overlap")) == []
    assert attempts_alive(gate, "abc") == []


@pytest.mark.parametrize("driver", ["serve", "run"])
def test_a_stop_sent_to_a_server_that_does_not_drive_the_run_stops_the_drivers_tasks(
    pg_schema_url: str, store: SqlEventStore, tmp_path: Path, driver: str
) -> None:
    repo, gate, plan = make_project(tmp_path)
    with servers.servers(pg_schema_url, tmp_path, "alpha", "beta") as (first, second):
        project_id = register(second, repo, plan)
        cli: subprocess.Popen[bytes] | None = None
        if driver == "serve":
            run_id = start(first, project_id)
            driver_actor = "plait@alpha"
        else:  # `plait run` in this process's namespaces drives it
            cli = subprocess.Popen(
                [servers.PLAIT, "run", str(plan), "--repo", str(repo), "--db", pg_schema_url],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **servers.LEASES, "XDG_DATA_HOME": str(tmp_path / "d")},
            )
            project = wait_for(
                "the CLI's run",
                lambda: second.get(f"/api/projects/{project_id}").json().get("active_run_id"),
            )
            run_id = str(project)
            driver_actor = f"plait@{os.uname().nodename}"
        wait_for("batch 1 running", lambda: len(started(gate)) == 3)
        # Never released: the tasks would run for two minutes if nobody stopped them.
        stop = second.client.post(f"/api/projects/{project_id}/parallel/stop")
        assert stop.status_code == 202, stop.text
        ends = wait_for("the run's end", lambda: ended(store, project_id, run_id))
        assert attempts_alive(gate) == []  # the driver's tasks are stopped
        run = events(store, run_id)
        if cli is not None:
            assert cli.wait(timeout=servers.BOUND) == 1  # it ended, not landed
    by_type = {e.type: e for e in run}
    assert actor(by_type["StopRequested"]) == "plait@beta"  # asked by the server that got it
    assert actor(by_type["RunStopped"]) == driver_actor  # done by the one that drives
    assert [e.data["outcome"] for e in ends] == ["stopped"]
    assert [e.type for e in run].count("RunStopped") == 1


@pytest.mark.parametrize("schedule", ["batch", "ready"])
def test_a_driver_whose_lease_was_taken_writes_nothing_and_no_second_run_starts(
    pg_schema_url: str, store: SqlEventStore, tmp_path: Path, schedule: str
) -> None:
    repo, gate, plan = make_project(tmp_path, schedule)
    with servers.servers(pg_schema_url, tmp_path, "alpha", "beta") as (first, _second):
        project_id = register(first, repo, plan)
        run_id = start(first, project_id)
        wait_for("batch 1 running", lambda: len(started(gate, "alpha")) == 3)
        # A partition, simulated: the lease expires and another owner takes it (epoch 2).
        intruder = LeaseStore(store)
        intruder.expire(run_id)
        assert intruder.acquire(run_id) is not None
        at_intrusion = len(events(store, run_id))
        # The deposed driver stops its tasks as soon as a renewal is refused...
        wait_for("the deposed driver's tasks to stop", lambda: attempts_alive(gate) == [])
        # ...and writes nothing: not their interruption, not the run's failure or end.
        assert len(events(store, run_id)) == at_intrusion
        assert ended(store, project_id, run_id) == []
        refused = first.client.post(f"/api/projects/{project_id}/parallel/start")
        assert refused.status_code == 409, refused.text  # the run is still active
        intruder.release(run_id)  # the intruder leaves: the lease lapses, a server takes over
        wait_for("the takeover", lambda: any(e.type == "RunResumed" for e in events(store, run_id)))
        (gate / "release").write_text("")
        ends = wait_for("the run's end", lambda: ended(store, project_id, run_id))
        run = events(store, run_id)
        starts = [e for e in project_events(store, project_id) if e.type == "RunStarted"]
    # The next events are the new owner's: it records the interrupted attempts, resumes.
    taken = [e.type for e in run[at_intrusion : at_intrusion + 4]]
    assert taken == ["TaskInterrupted"] * 3 + ["RunResumed"], servers.dump(run)
    assert [e.data["outcome"] for e in ends] == ["landed"]
    assert len(starts) == 1
    assert landed_each_task_once(repo)
    assert list(gate.glob("*.overlap")) == []


def test_a_stop_for_a_run_whose_driver_died_is_finished_by_whoever_takes_its_lease(
    pg_schema_url: str, store: SqlEventStore, tmp_path: Path
) -> None:
    repo, gate, plan = make_project(tmp_path)
    with servers.servers(pg_schema_url, tmp_path, "alpha", "beta") as (first, second):
        project_id = register(first, repo, plan)
        run_id = start(first, project_id)
        wait_for("batch 1 running", lambda: len(started(gate)) == 3)
        first.kill_plait()
        # The dead driver's lease is still live: the stop can only be a request...
        stop = second.client.post(f"/api/projects/{project_id}/parallel/stop")
        assert stop.status_code == 202, stop.text
        # ...which the server that wins the lapsed lease carries out, running nothing again.
        ends = wait_for("the run's end", lambda: ended(store, project_id, run_id))
        run = events(store, run_id)
    types = [e.type for e in run]
    assert [e.data["outcome"] for e in ends] == ["stopped"]
    assert types.count("StopRequested") == 1
    assert types.count("TaskStarted") == 3  # batch 1 once, nothing after the stop
    assert "RunResumed" not in types
    assert actor(run[-1]) == "plait@beta"  # RunStopped, by the one that took the lease
    assert attempts_alive(gate) == []
