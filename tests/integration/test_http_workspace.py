"""What the dashboard reads and does through the API, in process: the run list with filters,
a run's timeline, a task's log by ranges and by attempt, its diff (committed or in
progress), a batch's test output with its culprit and conflicts, and land, retry, skip."""

from __future__ import annotations

import contextlib
import shlex
from collections.abc import AsyncGenerator, AsyncIterator
from pathlib import Path
from typing import Any, cast

import httpx
import pytest

from plait.eventstore import StoredEvent
from plait.projections.codec import run_stream
from tests.integration.http_support import (
    AUTH,
    AppClient,
    a_repo,
    finished,
    new_app,
    registered_project,
    running,
)


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[AppClient]:
    async with running(new_app(tmp_path)) as opened:
        yield opened


def error_code(response: httpx.Response) -> str:
    code: str = response.json()["error"]["code"]
    return code


async def run_to_end(client: AppClient, repo: Path, plan: dict[str, Any]) -> dict[str, Any]:
    project_id = await registered_project(client, repo, plan)
    started = await client.post(f"/api/projects/{project_id}/parallel/start", headers=AUTH)
    assert started.status_code == 202, started.text
    return await finished(client, project_id)


CULPRIT_PLAN: dict[str, Any] = {
    "retries": 0,
    "test_command": "test ! -e BROKEN || { echo 'FAILED tests/t.py::test_sum - boom'; exit 1; }",
    "tasks": [
        {"id": "good", "run": "echo good > good.txt"},
        {"id": "culprit", "run": "echo broken > BROKEN"},
        {"id": "red", "run": "echo red >> src/app.txt"},
        {"id": "blue", "run": "echo blue >> src/app.txt"},
    ],
}


async def test_the_run_list_is_filtered_by_status_and_project(
    client: AppClient, tmp_path: Path
) -> None:
    landed = await run_to_end(
        client, a_repo(tmp_path, "one"), {"tasks": [{"id": "a", "run": "echo a > a"}]}
    )
    failed = await run_to_end(
        client, a_repo(tmp_path, "two"), {"retries": 0, "tasks": [{"id": "b", "run": "exit 1"}]}
    )

    everything = (await client.get("/api/runs")).json()
    only_failed = (await client.get("/api/runs?status=failed")).json()
    of_one = (await client.get(f"/api/runs?project_id={landed['project_id']}")).json()
    bad = await client.get("/api/runs?status=completed")

    assert [r["run_id"] for r in everything] == [failed["run_id"], landed["run_id"]]
    assert [r["run_id"] for r in only_failed] == [failed["run_id"]]
    assert [r["run_id"] for r in of_one] == [landed["run_id"]]
    first = everything[1]
    assert first["repo_path"] == str((tmp_path / "one").resolve())
    assert (first["tasks_landed"], first["tasks_total"]) == (1, 1)
    assert first["started_at"]
    assert first["duration"] is not None
    assert (bad.status_code, error_code(bad)) == (400, "bad_request")
    assert "unknown status completed" in bad.json()["error"]["message"]


async def test_a_runs_timeline_has_attempts_merges_tests_and_landings_in_order(
    client: AppClient, tmp_path: Path
) -> None:
    done = await run_to_end(client, a_repo(tmp_path), CULPRIT_PLAN)

    timeline = (await client.get(f"/api/runs/{done['run_id']}/timeline")).json()

    kinds = {span["kind"] for span in timeline["spans"]}
    assert {"batch", "attempt", "merge", "test", "land"} <= kinds
    for span in timeline["spans"]:
        assert None not in (span["start"], span["end"]), span  # the run ended: nothing open
        assert span["start"] <= span["end"], span
    attempts = [(s["task_id"], s["attempt"]) for s in timeline["spans"] if s["kind"] == "attempt"]
    assert ("good", 1) in attempts
    assert any(s["kind"] == "test" and s["passed"] is False for s in timeline["spans"])


async def test_a_tasks_log_comes_in_ranges_and_attempts_are_kept_apart(
    client: AppClient, tmp_path: Path
) -> None:
    marker = shlex.quote(str(tmp_path / "tried"))
    flaky = (
        f"if [ -e {marker} ]; then seq 1 2000; echo second > s.txt; "
        f"else touch {marker}; echo 'first try'; exit 1; fi"
    )
    done = await run_to_end(
        client, a_repo(tmp_path), {"retries": 1, "tasks": [{"id": "t", "run": flaky}]}
    )
    url = f"/api/runs/{done['run_id']}/tasks/t/log"

    first = (await client.get(f"{url}?attempt=1")).json()
    pieces, offset = [], 0
    while True:
        piece = (await client.get(f"{url}?attempt=2&offset={offset}&limit=1000")).json()
        pieces.append(piece["text"])
        if piece["next_offset"] >= piece["size"]:
            break
        offset = piece["next_offset"]
    whole = (await client.get(url)).json()  # default: the last attempt, from the start

    assert (first["attempt"], first["attempts"], first["status"]) == (1, [1, 2], "failed")
    assert first["text"] == "first try\n"
    assert len(pieces) > 1
    assert "".join(pieces) == whole["text"] == "".join(f"{i}\n" for i in range(1, 2001))
    assert (whole["attempt"], whole["source"], whole["finished"]) == (2, "file", True)
    missing = await client.get(f"{url}?attempt=9")
    assert (missing.status_code, error_code(missing)) == (404, "unknown_task")
    assert "has no attempt 9 (its attempts: 1, 2)" in missing.json()["error"]["message"]


async def test_a_log_whose_file_is_gone_is_read_from_the_events(
    client: AppClient, tmp_path: Path
) -> None:
    done = await run_to_end(client, a_repo(tmp_path), {"tasks": [{"id": "t", "run": "echo hello"}]})
    [attempt] = next(t for t in done["tasks"] if t["task_id"] == "t")["attempts"]
    Path(attempt["log_path"]).unlink()

    log = (await client.get(f"/api/runs/{done['run_id']}/tasks/t/log")).json()

    assert (log["text"], log["source"]) == ("hello\n", "events")


async def test_a_landed_tasks_diff_is_its_commit_against_its_base(
    client: AppClient, tmp_path: Path
) -> None:
    done = await run_to_end(
        client,
        a_repo(tmp_path),
        {"tasks": [{"id": "t", "run": "echo new > new.txt && echo more >> src/app.txt"}]},
    )

    diff = (await client.get(f"/api/runs/{done['run_id']}/tasks/t/diff")).json()

    assert diff["source"] == "commit"
    assert diff["head"] == next(t for t in done["tasks"] if t["task_id"] == "t")["commit"]
    assert {f["path"]: (f["additions"], f["deletions"]) for f in diff["files"]} == {
        "new.txt": (1, 0),
        "src/app.txt": (1, 0),
    }
    assert "+new" in diff["patch"]
    assert "+more" in diff["patch"]
    assert diff["truncated"] is False


async def said(client: AppClient, run_id: str, words: str) -> None:
    """Return once the run's output has said `words` (as the store records it)."""
    stream = run_stream(run_id)
    feed = cast(AsyncGenerator[StoredEvent, None], client.plait.store.subscribe(0))
    async with contextlib.aclosing(feed):
        async for stored in feed:
            if stored.stream_id == stream and words in str(stored.data.get("text", "")):
                return


async def test_a_running_tasks_diff_shows_its_work_in_progress_new_files_too(
    client: AppClient, tmp_path: Path
) -> None:
    release = tmp_path / "release"
    waits = (
        "echo draft > draft.txt && echo wrote && "
        f"while [ ! -e {shlex.quote(str(release))} ]; do sleep 0.05; done"
    )
    plan = {"tasks": [{"id": "t", "run": waits}]}
    project_id = await registered_project(client, a_repo(tmp_path), plan)
    started = await client.post(f"/api/projects/{project_id}/parallel/start", headers=AUTH)
    run_id = started.json()["run_id"]
    try:
        await said(client, run_id, "wrote")
        await client.plait.wait_until_projected()
        diff = (await client.get(f"/api/runs/{run_id}/tasks/t/diff")).json()
    finally:
        release.touch()
    await finished(client, project_id)
    assert diff["source"] == "worktree"
    assert diff["head"] is None
    assert [f["path"] for f in diff["files"]] == ["draft.txt"]
    assert "+draft" in diff["patch"]


async def test_a_culprit_batchs_tests_name_the_failing_tests_the_culprit_and_the_conflict(
    client: AppClient, tmp_path: Path
) -> None:
    done = await run_to_end(client, a_repo(tmp_path), CULPRIT_PLAN)

    tests = (await client.get(f"/api/runs/{done['run_id']}/batches/1/tests")).json()

    assert tests["command"] == CULPRIT_PLAN["test_command"]
    verdicts = [run["verdict"] for run in tests["runs"]]
    assert "failed" in verdicts
    assert "passed" in verdicts
    red = next(run for run in tests["runs"] if run["verdict"] == "failed")
    assert red["failing_tests"] == ["tests/t.py::test_sum"]
    assert "FAILED tests/t.py::test_sum - boom" in red["output"]
    assert red["tested"].startswith("the merge up to and with task")
    [culprit] = tests["culprits"]
    assert (culprit["task_id"], culprit["failing_tests"]) == ("culprit", ["tests/t.py::test_sum"])
    assert "bisection" in culprit["why"]
    assert {c["task_id"] for c in tests["conflicts"]} <= {"red", "blue"}
    assert next(c["files"] for c in tests["conflicts"]) == ["src/app.txt"]
    missing = await client.get(f"/api/runs/{done['run_id']}/batches/7/tests")
    assert (missing.status_code, error_code(missing)) == (404, "unknown_batch")


FAILS: dict[str, Any] = {
    "retries": 0,
    "tasks": [
        {"id": "good", "run": "echo good > good.txt"},
        {"id": "broken", "run": "exit 3"},
        {"id": "needy", "run": "echo n > n.txt", "depends_on": ["broken"]},
    ],
}


async def test_landing_a_failed_run_through_the_api(client: AppClient, tmp_path: Path) -> None:
    done = await run_to_end(client, a_repo(tmp_path), FAILS)
    assert (done["status"], done["landable"]) == ("failed", True)

    answer = await client.post(f"/api/runs/{done['run_id']}/land", headers=AUTH)
    assert (answer.status_code, answer.json()["status"]) == (202, "landing")
    landed = await finished(client, done["project_id"])

    assert (landed["status"], landed["landed_on"]) == ("landed", "main")
    assert landed["landed_commit"] == done["result_commit"]
    again = await client.post(f"/api/runs/{done['run_id']}/land", headers=AUTH)
    assert (again.status_code, error_code(again)) == (409, "not_resumable")


async def test_skipping_and_retrying_a_task_through_the_api(
    client: AppClient, tmp_path: Path
) -> None:
    done = await run_to_end(client, a_repo(tmp_path), FAILS)

    skipped = await client.post(f"/api/runs/{done['run_id']}/tasks/broken/skip", headers=AUTH)
    assert (skipped.status_code, skipped.json()["status"]) == (202, "skipping")
    after = await finished(client, done["project_id"])

    assert after["status"] == "landed"
    notes = {t["task_id"]: (t["status"], t["note"]) for t in after["tasks"]}
    assert notes["broken"] == ("skipped", "skipped by a user")
    assert notes["needy"] == ("skipped", "depends on 'broken', which was skipped")
    refused = await client.post(f"/api/runs/{done['run_id']}/tasks/broken/retry", headers=AUTH)
    assert (refused.status_code, error_code(refused)) == (409, "not_resumable")


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("/api/runs/nosuchrun/land", 404, "unknown_run"),
        ("/api/runs/nosuchrun/tasks/a/retry", 404, "unknown_run"),
    ],
)
async def test_an_action_on_an_unknown_run_is_not_found(
    client: AppClient, path: str, status: int, code: str
) -> None:
    response = await client.post(path, headers=AUTH)
    assert (response.status_code, error_code(response)) == (status, code)


async def test_actions_need_the_token_and_take_no_fields(client: AppClient, tmp_path: Path) -> None:
    done = await run_to_end(client, a_repo(tmp_path), FAILS)
    url = f"/api/runs/{done['run_id']}/tasks/broken/retry"

    async with AppClient(client.app, anonymous=True) as nobody:
        anonymous = await nobody.post(url)
    extra = await client.post(url, json={"force": True}, headers=AUTH)

    assert anonymous.status_code == 401
    assert (extra.status_code, error_code(extra)) == (422, "unknown_field")
