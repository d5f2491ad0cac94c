"""The HTTP API in-process (httpx ASGITransport, lifespan entered): every route, every error."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.routing import Route

from plait.domain.plan.profiles import PROFILE_FIELDS
from plait.domain.plan.reading import BATCH_FIELDS, PLAN_FIELDS, TASK_FIELDS
from plait.domain.plan.schema import MAX_CONCURRENCY_LIMIT
from plait.http.app import all_routes
from plait.http.openapi import openapi_document
from plait.http.state import OPEN_PATHS
from tests.gitrepo import git
from tests.integration.http_support import (
    AUTH,
    SMALL_PLAN,
    AppClient,
    a_repo,
    finished,
    new_app,
    registered_project,
    running,
)

SEED_STATUS_FIELDS = {
    "execution_mode",
    "parallel_started_at",
    "batches_total",
    "current_batch",
    "completed_batches",
}
BLOCKING_PLAN: dict[str, Any] = {"tasks": [{"id": "wait", "run": "sleep 600"}]}


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[AppClient]:
    async with running(new_app(tmp_path)) as opened:
        yield opened


def error_of(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"}, body
    error: dict[str, Any] = body["error"]
    assert isinstance(error["code"], str)
    assert isinstance(error["message"], str)
    return error


# --- projects -------------------------------------------------------------------------------


async def test_a_registered_project_is_listed_and_readable(
    client: AppClient, tmp_path: Path
) -> None:
    repo = a_repo(tmp_path)
    response = await client.post(
        "/api/projects", json={"path": str(repo), "name": "demo"}, headers=AUTH
    )
    assert response.status_code == 201
    project_id = response.json()["project_id"]
    assert response.headers["location"] == f"/api/projects/{project_id}"

    listed = (await client.get("/api/projects")).json()
    assert [p["project_id"] for p in listed] == [project_id]
    project = (await client.get(f"/api/projects/{project_id}")).json()
    assert (project["name"], project["repo_path"], project["plan"], project["runs"]) == (
        "demo",
        str(repo.resolve()),
        None,
        [],
    )


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"path": "/no/such/directory"}, "not_a_repository"),
        ({"name": "no path"}, "bad_request"),
        ({"path": ""}, "bad_request"),
        ({"path": "/tmp", "name": 5}, "bad_request"),
        ([1, 2], "invalid_json"),
    ],
)
async def test_a_registration_without_a_usable_repository_is_refused(
    client: AppClient, body: Any, code: str
) -> None:
    response = await client.post("/api/projects", json=body, headers=AUTH)
    assert response.status_code == 400
    assert error_of(response)["code"] == code


async def test_a_directory_outside_git_is_not_a_repository(
    client: AppClient, tmp_path: Path
) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    response = await client.post("/api/projects", json={"path": str(plain)}, headers=AUTH)
    assert (response.status_code, error_of(response)["code"]) == (400, "not_a_repository")


async def test_registering_a_registered_repository_again_answers_its_project(
    client: AppClient, tmp_path: Path
) -> None:
    repo = a_repo(tmp_path)
    first = await client.post("/api/projects", json={"path": str(repo)}, headers=AUTH)
    # Another spelling of the same repository: a subdirectory of its checkout.
    again = await client.post("/api/projects", json={"path": str(repo / "src")}, headers=AUTH)

    assert (first.status_code, first.json()["created"]) == (201, True)
    assert (again.status_code, again.json()) == (
        200,
        {"project_id": first.json()["project_id"], "created": False},
    )
    assert len((await client.get("/api/projects")).json()) == 1


async def test_two_registrations_of_one_repository_at_once_make_one_project(
    client: AppClient, tmp_path: Path
) -> None:
    repo = a_repo(tmp_path)
    answers = await asyncio.gather(
        *(client.post("/api/projects", json={"path": str(repo)}, headers=AUTH) for _ in range(4))
    )
    assert sorted(a.status_code for a in answers) == [200, 200, 200, 201]
    assert len({a.json()["project_id"] for a in answers}) == 1


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/projects", {"path": "/tmp", "nmae": "typo"}),
        ("/api/projects/{p}/parallel/resume", {"run": "abc"}),
    ],
)
async def test_a_body_field_the_request_does_not_take_is_refused(
    client: AppClient, tmp_path: Path, path: str, body: dict[str, Any]
) -> None:
    project_id = await registered_project(client, a_repo(tmp_path))
    response = await client.post(path.format(p=project_id), json=body, headers=AUTH)
    error = error_of(response)
    assert (response.status_code, error["code"]) == (422, "unknown_field")
    unknown = next(key for key in body if key not in ("path",))
    assert repr(unknown) in error["message"]


async def test_a_repository_without_commits_is_refused_at_registration(
    client: AppClient, tmp_path: Path
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    git(empty, "init", "--quiet")
    response = await client.post("/api/projects", json={"path": str(empty)}, headers=AUTH)
    error = error_of(response)
    assert (response.status_code, error["code"]) == (400, "not_a_repository")
    assert "has no commits yet" in error["message"]


async def test_a_bare_repository_is_refused_as_bare(client: AppClient, tmp_path: Path) -> None:
    bare = tmp_path / "bare.git"
    git(tmp_path, "clone", "--quiet", "--bare", str(a_repo(tmp_path)), str(bare))
    response = await client.post("/api/projects", json={"path": str(bare)}, headers=AUTH)
    error = error_of(response)
    assert (response.status_code, error["code"]) == (400, "not_a_repository")
    assert "is a bare repository" in error["message"]
    assert "not inside a git repository" not in error["message"]


async def test_a_deleted_project_is_gone_and_its_repository_can_register_again(
    client: AppClient, tmp_path: Path
) -> None:
    repo = a_repo(tmp_path)
    project_id = await registered_project(client, repo, SMALL_PLAN)

    deleted = await client.delete(f"/api/projects/{project_id}", headers=AUTH)

    assert (deleted.status_code, deleted.json()) == (
        200,
        {"project_id": project_id, "deleted": True},
    )
    assert (await client.get(f"/api/projects/{project_id}")).status_code == 404
    assert (await client.get("/api/projects")).json() == []
    start = await client.post(f"/api/projects/{project_id}/parallel/start", headers=AUTH)
    assert (start.status_code, error_of(start)["code"]) == (404, "unknown_project")
    again = await client.post("/api/projects", json={"path": str(repo)}, headers=AUTH)
    assert again.status_code == 201
    # Registered again: a project without the old plan, which must be submitted anew.
    project = (await client.get(f"/api/projects/{again.json()['project_id']}")).json()
    assert project["plan"] is None


async def test_a_project_with_an_active_run_cannot_be_deleted(
    client: AppClient, tmp_path: Path
) -> None:
    project_id = await registered_project(client, a_repo(tmp_path), BLOCKING_PLAN)
    started = await client.post(f"/api/projects/{project_id}/parallel/start", headers=AUTH)

    refused = await client.delete(f"/api/projects/{project_id}", headers=AUTH)

    error = error_of(refused)
    assert (refused.status_code, error["code"]) == (409, "run_already_active")
    assert error["run_id"] == started.json()["run_id"]
    assert (await client.get(f"/api/projects/{project_id}")).status_code == 200


async def test_a_start_or_resume_where_this_server_cannot_see_the_repository_names_its_path(
    client: AppClient, tmp_path: Path
) -> None:
    repo = a_repo(tmp_path)
    project_id = await registered_project(client, repo, SMALL_PLAN)
    first = await client.post(f"/api/projects/{project_id}/parallel/start")
    assert first.status_code == 202, first.text
    await client.plait.wait_run(first.json()["run_id"])
    repo.rename(tmp_path / "elsewhere")  # as a server on another host sees it: not there
    position = (await client.get("/healthz")).json()["position"]
    for action in ("start", "resume"):
        refused = await client.post(f"/api/projects/{project_id}/parallel/{action}")
        assert refused.status_code == 400, (action, refused.text)
        error = error_of(refused)
        assert error["code"] == "not_a_repository"
        assert str(repo) in error["message"]
        assert "this server cannot use" in error["message"]
    repo.mkdir()  # a directory, but not the repository
    refused = await client.post(f"/api/projects/{project_id}/parallel/start")
    assert (refused.status_code, error_of(refused)["code"]) == (400, "not_a_repository")
    assert str(repo) in error_of(refused)["message"]
    assert (await client.get("/healthz")).json()["position"] == position  # nothing recorded


async def test_deleting_needs_the_token(client: AppClient, tmp_path: Path) -> None:
    project_id = await registered_project(client, a_repo(tmp_path))
    async with AppClient(client.app, anonymous=True) as anonymous:
        response = await anonymous.delete(f"/api/projects/{project_id}")
    assert response.status_code == 401
    assert (await client.get(f"/api/projects/{project_id}")).status_code == 200


async def test_a_body_that_is_not_json_is_refused(client: AppClient) -> None:
    headers = {**AUTH, "Content-Type": "application/json"}
    response = await client.post("/api/projects", content=b"{not json", headers=headers)
    assert (response.status_code, error_of(response)["code"]) == (400, "invalid_json")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/projects/{p}"),
        ("GET", "/api/projects/{p}/parallel/status"),
        ("POST", "/api/projects/{p}/parallel/start"),
        ("POST", "/api/projects/{p}/parallel/stop"),
        ("POST", "/api/projects/{p}/parallel/resume"),
        ("GET", "/api/projects/{p}/history"),
        ("GET", "/api/projects/{p}/events"),
        ("GET", "/api/runs/{p}"),
    ],
)
async def test_an_unknown_project_or_run_is_not_found(
    client: AppClient, method: str, path: str
) -> None:
    response = await client.request(method, path.format(p="nosuchthing"), headers=AUTH)
    assert response.status_code == 404
    assert error_of(response)["code"] in ("unknown_project", "unknown_run")


async def test_a_plan_for_an_unknown_project_is_not_found(client: AppClient) -> None:
    response = await client.put("/api/projects/nosuchthing/plan", json=SMALL_PLAN, headers=AUTH)
    assert (response.status_code, error_of(response)["code"]) == (404, "unknown_project")


# --- plans ----------------------------------------------------------------------------------


async def test_a_json_plan_is_accepted_with_its_batches_and_mode(
    client: AppClient, tmp_path: Path
) -> None:
    project_id = await registered_project(client, a_repo(tmp_path))
    response = await client.put(f"/api/projects/{project_id}/plan", json=SMALL_PLAN, headers=AUTH)
    assert response.status_code == 200
    decision = response.json()
    assert decision["mode"] == "parallel"
    assert decision["batches"] == [
        {"batch_id": 1, "task_ids": ["hello", "world"], "can_parallel": True},
        {"batch_id": 2, "task_ids": ["both"], "can_parallel": False},
    ]
    project = (await client.get(f"/api/projects/{project_id}")).json()
    assert project["plan"]["mode"] == "parallel"


@pytest.mark.parametrize("media", ["application/yaml", "application/x-yaml", "text/yaml"])
async def test_a_yaml_plan_is_accepted_with_a_yaml_content_type(
    client: AppClient, tmp_path: Path, media: str
) -> None:
    project_id = await registered_project(client, a_repo(tmp_path))
    text = "tasks:\n  - id: only\n    run: echo hi > a.txt\n"
    response = await client.put(
        f"/api/projects/{project_id}/plan",
        content=text.encode(),
        headers={**AUTH, "Content-Type": media},
    )
    assert response.status_code == 200, response.text
    assert response.json()["batches"] == [
        {"batch_id": 1, "task_ids": ["only"], "can_parallel": False}
    ]


@pytest.mark.parametrize(
    ("content", "media", "problem"),
    [
        (b'{"tasks": [{"id": "Bad!", "run": "true"}]}', "application/json", "id must match"),
        (b'{"tasks": []}', "application/json", "task"),
        (b"tasks: [ {id: a", "application/yaml", "invalid YAML"),
        (b"tasks:\n  - id: a\n    run: x\n  - id: a\n    run: y\n", "text/yaml", "a"),
    ],
)
async def test_an_invalid_plan_is_refused_with_every_problem(
    client: AppClient, tmp_path: Path, content: bytes, media: str, problem: str
) -> None:
    project_id = await registered_project(client, a_repo(tmp_path))
    response = await client.put(
        f"/api/projects/{project_id}/plan", content=content, headers={**AUTH, "Content-Type": media}
    )
    assert response.status_code == 422
    error = error_of(response)
    assert error["code"] == "invalid_plan"
    assert error["problems"]
    assert any(problem in p for p in error["problems"]), error["problems"]


async def test_a_plan_in_an_unknown_format_is_refused(client: AppClient, tmp_path: Path) -> None:
    project_id = await registered_project(client, a_repo(tmp_path))
    response = await client.put(
        f"/api/projects/{project_id}/plan",
        content=b"tasks=1",
        headers={**AUTH, "Content-Type": "text/plain"},
    )
    assert (response.status_code, error_of(response)["code"]) == (415, "unsupported_media_type")


# --- runs: the seed's start / status / stop -------------------------------------------------


async def test_a_project_without_a_plan_cannot_start(client: AppClient, tmp_path: Path) -> None:
    project_id = await registered_project(client, a_repo(tmp_path))
    response = await client.post(f"/api/projects/{project_id}/parallel/start", headers=AUTH)
    assert (response.status_code, error_of(response)["code"]) == (400, "no_plan")


async def test_the_status_of_a_project_that_never_ran_has_the_seeds_fields(
    client: AppClient, tmp_path: Path
) -> None:
    project_id = await registered_project(client, a_repo(tmp_path), SMALL_PLAN)
    status = (await client.get(f"/api/projects/{project_id}/parallel/status")).json()
    assert set(status) >= SEED_STATUS_FIELDS
    assert (status["run_id"], status["status"], status["batches_total"]) == (None, None, 2)
    assert status["execution_mode"] == "parallel"


async def test_a_started_run_lands_every_batch(client: AppClient, tmp_path: Path) -> None:
    project_id = await registered_project(client, a_repo(tmp_path), SMALL_PLAN)
    response = await client.post(f"/api/projects/{project_id}/parallel/start", headers=AUTH)
    assert response.status_code == 202
    body = response.json()
    run_id = body.pop("run_id")
    assert body == {"status": "started", "message": "Parallel execution initiated"}

    status = await finished(client, project_id)
    assert status["status"] == "landed", status
    assert status["run_id"] == run_id
    assert SEED_STATUS_FIELDS | {"run_id", "status", "batches", "tasks"} <= set(status)
    assert (status["batches_total"], status["completed_batches"]) == (2, 2)
    assert {b["status"] for b in status["batches"]} == {"completed"}
    assert sorted(t["task_id"] for t in status["tasks"]) == ["both", "hello", "world"]
    assert status["execution_mode"] == "parallel"
    assert status["parallel_started_at"] is not None

    run = (await client.get(f"/api/runs/{run_id}")).json()
    assert run == status
    runs = (await client.get(f"/api/projects/{project_id}")).json()["runs"]
    assert [(r["run_id"], r["status"]) for r in runs] == [(run_id, "landed")]


async def test_a_second_start_while_a_run_is_active_is_a_conflict(
    client: AppClient, tmp_path: Path
) -> None:
    project_id = await registered_project(client, a_repo(tmp_path), BLOCKING_PLAN)
    first = await client.post(f"/api/projects/{project_id}/parallel/start", headers=AUTH)
    second = await client.post(f"/api/projects/{project_id}/parallel/start", headers=AUTH)
    assert first.status_code == 202
    assert second.status_code == 409
    error = error_of(second)
    assert (error["code"], error["run_id"]) == ("run_already_active", first.json()["run_id"])


async def test_a_stopped_run_can_be_resumed(client: AppClient, tmp_path: Path) -> None:
    project_id = await registered_project(client, a_repo(tmp_path), BLOCKING_PLAN)
    started = await client.post(f"/api/projects/{project_id}/parallel/start", headers=AUTH)
    run_id = started.json()["run_id"]

    stop = await client.post(f"/api/projects/{project_id}/parallel/stop", headers=AUTH)
    assert stop.status_code == 202
    assert stop.json() == {"status": "stopping", "message": "Stop requested", "run_id": run_id}
    stopped = await finished(client, project_id)
    assert stopped["status"] == "stopped"

    again = await client.post(f"/api/projects/{project_id}/parallel/stop", headers=AUTH)
    assert (again.status_code, error_of(again)["code"]) == (409, "no_active_run")

    resumed = await client.post(
        f"/api/projects/{project_id}/parallel/resume", json={"run_id": run_id}, headers=AUTH
    )
    assert resumed.status_code == 202
    assert resumed.json() == {"status": "resuming", "message": "Resume requested", "run_id": run_id}
    status = (await client.get(f"/api/projects/{project_id}/parallel/status")).json()
    assert (status["run_id"], status["status"]) == (run_id, "running")


async def test_resuming_a_completed_run_is_a_conflict(client: AppClient, tmp_path: Path) -> None:
    project_id = await registered_project(client, a_repo(tmp_path), SMALL_PLAN)
    await client.post(f"/api/projects/{project_id}/parallel/start", headers=AUTH)
    await finished(client, project_id)
    response = await client.post(f"/api/projects/{project_id}/parallel/resume", headers=AUTH)
    assert (response.status_code, error_of(response)["code"]) == (409, "not_resumable")


async def test_resuming_with_an_invalid_run_id_is_refused(
    client: AppClient, tmp_path: Path
) -> None:
    project_id = await registered_project(client, a_repo(tmp_path), SMALL_PLAN)
    response = await client.post(
        f"/api/projects/{project_id}/parallel/resume", json={"run_id": "../x"}, headers=AUTH
    )
    assert (response.status_code, error_of(response)["code"]) == (400, "invalid_id")


# --- history --------------------------------------------------------------------------------


async def test_history_replays_the_run_as_it_was_at_a_position_or_a_time(
    client: AppClient, tmp_path: Path
) -> None:
    project_id = await registered_project(client, a_repo(tmp_path), SMALL_PLAN)
    before_run = datetime.now(UTC).isoformat()
    run_id = (await client.post(f"/api/projects/{project_id}/parallel/start", headers=AUTH)).json()[
        "run_id"
    ]
    await finished(client, project_id)

    now = (await client.get(f"/api/projects/{project_id}/history")).json()
    types = [row["type"] for row in now["timeline"]]
    assert types[:3] == ["ProjectRegistered", "PlanAccepted", "RunStarted"]
    assert "RunCompleted" in types
    assert now["status_at"]["status"] == "landed"
    assert now["run_id"] == run_id

    first_batch_done = next(
        row["position"] for row in now["timeline"] if row["type"] == "BatchCompleted"
    )
    then = (
        await client.get(
            f"/api/projects/{project_id}/history",
            params={"run_id": run_id, "until": str(first_batch_done)},
        )
    ).json()
    assert then["until"] == first_batch_done
    assert then["timeline"][-1]["position"] == first_batch_done
    assert {row["run_id"] for row in then["timeline"]} == {run_id}
    assert (then["status_at"]["status"], then["status_at"]["completed_batches"]) == ("running", 1)

    earlier = (
        await client.get(f"/api/projects/{project_id}/history", params={"until": before_run})
    ).json()
    assert [row["type"] for row in earlier["timeline"]] == ["ProjectRegistered", "PlanAccepted"]
    assert earlier["status_at"] is None


@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({"until": "yesterday"}, 400),
        ({"run_id": "../etc"}, 400),
        ({"run_id": "nosuchrun"}, 404),
    ],
)
async def test_history_refuses_a_bad_point_or_run(
    client: AppClient, tmp_path: Path, params: dict[str, str], status: int
) -> None:
    project_id = await registered_project(client, a_repo(tmp_path), SMALL_PLAN)
    response = await client.get(f"/api/projects/{project_id}/history", params=params)
    assert response.status_code == status
    error_of(response)


async def test_history_refuses_a_run_of_another_project(client: AppClient, tmp_path: Path) -> None:
    mine = await registered_project(client, a_repo(tmp_path, "mine"), SMALL_PLAN)
    theirs = await registered_project(client, a_repo(tmp_path, "theirs"), SMALL_PLAN)
    run_id = (await client.post(f"/api/projects/{theirs}/parallel/start", headers=AUTH)).json()[
        "run_id"
    ]
    response = await client.get(f"/api/projects/{mine}/history", params={"run_id": run_id})
    assert (response.status_code, error_of(response)["code"]) == (404, "unknown_run")


# --- operations -----------------------------------------------------------------------------


async def test_health_reports_the_store_position(client: AppClient, tmp_path: Path) -> None:
    await registered_project(client, a_repo(tmp_path))
    health = (await client.get("/healthz")).json()
    assert health["status"] == "ok"
    assert health["position"] == 1


async def test_metrics_count_runs_tasks_and_stream_clients(
    client: AppClient, tmp_path: Path
) -> None:
    project_id = await registered_project(client, a_repo(tmp_path), SMALL_PLAN)
    await client.post(f"/api/projects/{project_id}/parallel/start", headers=AUTH)
    await finished(client, project_id)
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    lines = response.text.splitlines()
    assert "plait_runs_started_total 1.0" in lines
    assert "plait_sse_clients 0.0" in lines
    assert 'plait_tasks{status="landed"} 3.0' in lines or any(
        line.startswith("plait_tasks{") for line in lines
    )
    assert any(line.startswith("plait_store_position ") for line in lines)


async def test_each_app_counts_on_its_own_registry(tmp_path: Path) -> None:
    async with running(new_app(tmp_path / "one")) as one, running(new_app(tmp_path / "two")) as two:
        project_id = await registered_project(one, a_repo(tmp_path), SMALL_PLAN)
        await one.post(f"/api/projects/{project_id}/parallel/start", headers=AUTH)
        assert "plait_runs_started_total 1.0" in (await one.get("/metrics")).text
        assert "plait_runs_started_total 0.0" in (await two.get("/metrics")).text


async def test_the_dashboard_is_served_with_a_strict_policy(client: AppClient) -> None:
    page = await client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["referrer-policy"] == "no-referrer"
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert '<script src="/static/app.js"' in page.text
    script = await client.get("/static/app.js")
    assert script.status_code == 200
    assert "EventSource" in script.text
    assert (await client.get("/static/app.css")).status_code == 200


async def test_the_openapi_document_describes_every_route(client: AppClient) -> None:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    document = response.json()
    app = client.app
    assert document == openapi_document(app.routes, app.state.config.open_paths)
    assert document["openapi"].startswith("3.")
    served = {
        (re.sub(r":\w+}", "}", route.path), method.lower())
        for route in app.routes
        if isinstance(route, Route)
        for method in route.methods or ()
        if method != "HEAD"
    }
    documented = {
        (path, method) for path, operations in document["paths"].items() for method in operations
    }
    assert served == documented
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            assert operation["responses"], (path, method)
            if method in ("post", "put"):
                assert {"401", "403", "413", "421"} <= set(operation["responses"])
            if path in ("/healthz", "/metrics"):
                assert operation["security"] == [], path
                assert "401" not in operation["responses"]
            else:  # every other request, reads too, needs the token or the cookie
                assert operation["security"] == [{"bearer": []}, {"cookie": []}], path
                assert "401" in operation["responses"], path
            named = {p["name"] for p in operation["parameters"] if p["in"] == "path"}
            assert named == set(_placeholders(path)), (path, method)


def test_the_plans_schemas_are_the_readers_own_field_tables() -> None:
    schemas = openapi_document(all_routes(), OPEN_PATHS)["components"]["schemas"]
    for name, fields in [
        ("Plan", PLAN_FIELDS),
        ("Task", TASK_FIELDS),
        ("Batch", BATCH_FIELDS),
        ("Profile", PROFILE_FIELDS),
    ]:
        assert set(schemas[name]["properties"]) == fields, name
        assert schemas[name]["additionalProperties"] is False
    assert "on_task_failure" in schemas["Plan"]["properties"]  # the hand-kept one lacked it
    limits = schemas["Plan"]["properties"]["max_concurrency"]
    assert (limits["minimum"], limits["maximum"]) == (1, MAX_CONCURRENCY_LIMIT)


def test_a_route_nobody_documented_stops_the_document() -> None:
    async def undocumented(request: Any) -> None: ...

    with pytest.raises(LookupError, match="GET /api/secret: no @documented note"):
        openapi_document([*all_routes(), Route("/api/secret", undocumented)], OPEN_PATHS)


def _placeholders(path: str) -> list[str]:
    return [part[1:-1] for part in path.split("/") if part.startswith("{")]
