"""The event streams and concurrent starts against a real uvicorn on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from httpx_sse import ServerSentEvent, aconnect_sse

from plait.eventstore import SqlEventStore, StoredEvent
from plait.projections.codec import project_stream, run_id_of
from tests.integration.http_support import (
    AUTH,
    SMALL_PLAN,
    LiveServer,
    a_repo,
    live_server,
    new_app,
)

RUN_EVENT_KEYS = {"position", "type", "stream_id", "recorded_at", "run_id", "batch_id"}
ENVELOPE_KEYS = RUN_EVENT_KEYS | {"task_id", "worktree_id", "attempt", "data"}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    with live_server(new_app(tmp_path, heartbeat=1.0)) as running:
        yield running


@pytest.fixture
async def client(server: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, timeout=60, headers=AUTH) as opened:
        yield opened


def store_of(server: LiveServer) -> SqlEventStore:
    store: SqlEventStore = server.app.state.runtime.store
    return store


async def new_project(client: httpx.AsyncClient, repo: Path, plan: dict[str, Any]) -> str:
    response = await client.post("/api/projects", json={"path": str(repo)}, headers=AUTH)
    assert response.status_code == 201, response.text
    project_id: str = response.json()["project_id"]
    put = await client.put(f"/api/projects/{project_id}/plan", json=plan, headers=AUTH)
    assert put.status_code == 200, put.text
    return project_id


async def collect(
    client: httpx.AsyncClient,
    path: str,
    until: Callable[[list[ServerSentEvent]], bool],
    headers: dict[str, str] | None = None,
) -> list[ServerSentEvent]:
    """Events of a stream (not its retry/ping frames) until `until` says enough."""
    seen: list[ServerSentEvent] = []
    async with aconnect_sse(client, "GET", path, headers=headers or {}) as source:
        assert source.response.status_code == 200
        async for event in source.aiter_sse():
            if event.id:
                seen.append(event)
                if until(seen):
                    return seen
    raise AssertionError(f"{path} ended after {len(seen)} events")


def ended(run_id: str) -> Callable[[list[ServerSentEvent]], bool]:
    def check(seen: list[ServerSentEvent]) -> bool:
        last = seen[-1]
        return last.event == "RunEnded" and last.json()["run_id"] == run_id

    return check


def reaches(position: int) -> Callable[[list[ServerSentEvent]], bool]:
    return lambda seen: int(seen[-1].id) >= position


def of_project(events: list[StoredEvent], project_id: str) -> list[int]:
    runs = {
        run_id_of(e)
        for e in events
        if e.type == "RunCreated" and e.data["project_id"] == project_id
    }
    return [
        e.position
        for e in events
        if e.stream_id == project_stream(project_id) or run_id_of(e) in runs
    ]


async def test_a_project_stream_carries_each_of_its_events_once_and_no_others(
    client: httpx.AsyncClient, server: LiveServer, tmp_path: Path
) -> None:
    mine = await new_project(client, a_repo(tmp_path, "mine"), SMALL_PLAN)
    other = await new_project(client, a_repo(tmp_path, "other"), SMALL_PLAN)
    start = await client.post(f"/api/projects/{mine}/parallel/start", headers=AUTH)
    run_id = start.json()["run_id"]
    await client.post(f"/api/projects/{other}/parallel/start", headers=AUTH)

    events = await collect(client, f"/api/projects/{mine}/events", ended(run_id))

    last = int(events[-1].id)
    stored = store_of(server).read_all(0, 100_000)
    assert [int(e.id) for e in events] == [p for p in of_project(stored, mine) if p <= last]
    by_position = {e.position: e for e in stored}
    for event in events:
        envelope = event.json()
        original = by_position[int(event.id)]
        assert set(envelope) == ENVELOPE_KEYS
        assert (envelope["position"], envelope["type"], event.event) == (
            original.position,
            original.type,
            original.type,
        )
        assert envelope["stream_id"] == original.stream_id
        assert envelope["data"] == original.data
        if original.stream_id.startswith("run-"):
            assert envelope["run_id"] == run_id
    task_events = [e.json() for e in events if e.event == "TaskStarted"]
    assert {e["task_id"] for e in task_events} == {"hello", "world", "both"}
    assert all(e["batch_id"] and e["worktree_id"] and e["attempt"] == 1 for e in task_events)
    assert [e.event for e in events][:3] == ["ProjectRegistered", "PlanAccepted", "RunStarted"]


async def test_a_reconnect_with_last_event_id_gets_exactly_the_missed_events(
    client: httpx.AsyncClient, server: LiveServer, tmp_path: Path
) -> None:
    for name in ("one", "two", "three"):
        await new_project(client, a_repo(tmp_path, name), SMALL_PLAN)
    head = store_of(server).last_position()
    assert head == 6

    first = await collect(client, "/api/events", lambda seen: len(seen) == 2)
    # While nobody listens, more happens.
    await new_project(client, a_repo(tmp_path, "four"), SMALL_PLAN)
    rest = await collect(
        client, "/api/events", reaches(head + 2), headers={"Last-Event-ID": first[-1].id}
    )

    positions = [int(e.id) for e in first + rest]
    assert positions == list(range(1, head + 3))
    resumed = await collect(client, "/api/events?after=5", reaches(head + 2))
    assert [int(e.id) for e in resumed] == [6, 7, 8]


async def test_last_event_id_wins_over_after(client: httpx.AsyncClient, tmp_path: Path) -> None:
    await new_project(client, a_repo(tmp_path), SMALL_PLAN)
    events = await collect(
        client, "/api/events?after=0", reaches(2), headers={"Last-Event-ID": "1"}
    )
    assert [e.id for e in events] == ["2"]


async def on_server(server: LiveServer, work: Coroutine[Any, Any, Any]) -> None:
    """Run `work` on the server's own event loop and wait for it."""
    loop = server.server.servers[0].get_loop()
    await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(work, loop))


async def test_a_project_stream_knows_the_project_of_its_latest_run_before_the_run_s_next_event(
    client: httpx.AsyncClient, server: LiveServer, tmp_path: Path
) -> None:
    project = await new_project(client, a_repo(tmp_path), SMALL_PLAN)
    start = await client.post(f"/api/projects/{project}/parallel/start", headers=AUTH)
    run_id = start.json()["run_id"]
    runtime = server.app.state.runtime
    await on_server(server, runtime.plait.wait_run(run_id))
    await on_server(server, runtime.plait.wait_until_projected())
    runtime.run_owners.clear()  # as in a server that has not seen the run's RunCreated
    head = store_of(server).last_position()
    async with aconnect_sse(client, "GET", f"/api/projects/{project}/events?after={head}") as sse:
        assert sse.response.status_code == 200
        # The channel will not look the run's owner up (a thread hop and a read) on its
        # next event: the stream learnt it from the project as it opened.
        assert runtime.run_owners == {run_id: project}


async def test_a_stream_follows_events_stored_after_it_opened(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    opened = asyncio.Event()
    seen: list[ServerSentEvent] = []

    async def listen() -> None:
        async with aconnect_sse(client, "GET", "/api/events") as source:
            async for event in source.aiter_sse():
                if not event.id:
                    opened.set()  # the retry frame: the subscription is in place
                    continue
                seen.append(event)
                if event.event == "PlanAccepted":
                    return

    listener = asyncio.create_task(listen())
    await opened.wait()
    await new_project(client, a_repo(tmp_path), SMALL_PLAN)
    await listener
    assert [e.event for e in seen] == ["ProjectRegistered", "PlanAccepted"]


async def test_a_quiet_stream_sends_heartbeats(client: httpx.AsyncClient) -> None:
    async with client.stream("GET", "/api/events") as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-cache"
        lines = []
        async for line in response.aiter_lines():
            lines.append(line)
            if line == ": ping":
                break
    assert lines[0].startswith("retry: ")


@pytest.mark.parametrize(
    ("query", "headers"),
    [("", {"Last-Event-ID": "abc"}), ("?after=", {}), ("?after=-1", {}), ("?after=x", {})],
)
async def test_an_invalid_resume_point_is_refused(
    client: httpx.AsyncClient, query: str, headers: dict[str, str]
) -> None:
    response = await client.get(f"/api/events{query}", headers=headers)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "bad_request"


async def test_a_stream_of_an_unknown_project_is_not_found(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/projects/nosuchproject/events")
    assert response.status_code == 404


async def sse_clients(client: httpx.AsyncClient) -> float:
    text = (await client.get("/metrics")).text
    line = next(x for x in text.splitlines() if x.startswith("plait_sse_clients "))
    return float(line.split()[1])


async def test_open_streams_are_counted_and_a_departed_client_is_let_go(
    client: httpx.AsyncClient, server: LiveServer
) -> None:
    opened = asyncio.Event()

    async def listen() -> None:
        async with client.stream("GET", "/api/events") as response:
            async for line in response.aiter_lines():
                if line.startswith("retry: "):
                    opened.set()

    listener = asyncio.create_task(listen())
    await opened.wait()
    assert await sse_clients(client) == 1.0
    listener.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await listener
    # The server learns of the departure asynchronously; it must get there.
    for _ in range(200):
        if await sse_clients(client) == 0.0:
            break
        await asyncio.sleep(0.05)
    assert await sse_clients(client) == 0.0


def test_shutting_down_ends_open_streams(tmp_path: Path) -> None:
    server = LiveServer(new_app(tmp_path, heartbeat=1.0))
    server.start()
    with (
        httpx.Client(base_url=server.url, timeout=60, headers=AUTH) as client,
        client.stream("GET", "/api/events") as response,
    ):
        lines = response.iter_lines()
        assert next(lines).startswith("retry: ")
        server.server.should_exit = True
        for _line in lines:  # ends once the server closes the stream
            pass
    server.thread.join()
    assert not server.thread.is_alive()


@pytest.fixture
def concurrent_server(tmp_path: Path, store_url: str) -> Iterator[LiveServer]:
    with live_server(new_app(tmp_path, store_url=store_url, heartbeat=1.0)) as running:
        yield running


async def test_twenty_simultaneous_starts_give_exactly_one_run(
    concurrent_server: LiveServer, tmp_path: Path
) -> None:
    release = tmp_path / "release"
    blocking = {"tasks": [{"id": "wait", "run": f"while [ ! -e {release} ]; do sleep 0.1; done"}]}
    async with httpx.AsyncClient(
        base_url=concurrent_server.url, timeout=120, headers=AUTH
    ) as client:
        project_id = await new_project(client, a_repo(tmp_path), blocking)
        url = f"/api/projects/{project_id}/parallel/start"
        answers = await asyncio.gather(*(client.post(url, headers=AUTH) for _ in range(20)))

        codes = sorted(a.status_code for a in answers)
        assert codes == [202] + [409] * 19, [a.text for a in answers if a.status_code != 409]
        [winner] = [a.json() for a in answers if a.status_code == 202]
        for loser in (a for a in answers if a.status_code == 409):
            assert loser.json()["error"]["code"] == "run_already_active"

        release.touch()
        events = await collect(
            client, f"/api/projects/{project_id}/events", ended(winner["run_id"])
        )
        run_starts = [e for e in events if e.event == "RunStarted"]
        assert [json.loads(e.data)["run_id"] for e in run_starts] == [winner["run_id"]]
        status = (await client.get(f"/api/projects/{project_id}/parallel/status")).json()
        assert status["status"] == "succeeded"  # its task changed nothing: nothing to land
