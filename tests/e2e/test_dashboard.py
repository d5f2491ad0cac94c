"""The dashboard in Debian's chromium, on a real uvicorn, driving real runs on real
repositories: the timeline, a task's live log and its diff, a culprit batch's test output,
Stop, Resume, Retry, Skip and Land, the banner that says "Landed" only when the base moved,
no literal null or undefined anywhere, and the same words as the CLI and the API.

Tasks wait on marker files the test creates: the page is checked while a task is running
because the task cannot finish before the test lets it.
"""

from __future__ import annotations

import json
import os
import re
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.e2e.cli_support import plait
from tests.integration.http_support import (
    AUTH,
    TOKEN,
    LiveServer,
    a_repo,
    live_server,
    new_app,
    sqlite_url,
)

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
REPO_ROOT = Path(__file__).resolve().parents[2]
# A run takes seconds; this only keeps a broken page from hanging the suite.
PATIENCE_MS = 120_000
NOTHING = re.compile(r"\b(null|undefined|NaN)\b")

PLAN: dict[str, Any] = {
    "tasks": [
        {"id": "hello", "run": "echo hi | tee a.txt", "files": ["a.txt"]},
        {"id": "world", "run": "echo world | tee b.txt", "files": ["b.txt"]},
        {"id": "both", "run": "cat a.txt b.txt > c.txt", "depends_on": ["hello", "world"]},
    ]
}


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium")
        pytest.skip(f"{CHROMIUM} is missing")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    opened = context.new_page()
    opened.set_default_timeout(PATIENCE_MS)
    expect.set_options(timeout=PATIENCE_MS)
    yield opened
    context.close()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    with live_server(new_app(tmp_path, heartbeat=1.0)) as running:
        yield running


def register(base_url: str, repo: Path, plan: dict[str, Any] = PLAN) -> str:
    with httpx.Client(base_url=base_url, timeout=60) as client:
        response = client.post("/api/projects", json={"path": str(repo)}, headers=AUTH)
        project_id: str = response.json()["project_id"]
        put = client.put(f"/api/projects/{project_id}/plan", json=plan, headers=AUTH)
        assert put.status_code == 200, put.text
    return project_id


def open_project(page: Page, server: LiveServer, project_id: str) -> None:
    page.goto(f"{server.url}/?token={TOKEN}")
    expect(page).to_have_url(re.compile(re.escape(server.url) + r"/(#.*)?$"))  # token gone
    expect(page.locator("#connection")).to_have_attribute("data-state", "live")
    page.locator(f'button[data-project="{project_id}"]').click()


def nothing_shown_as_null(page: Page) -> None:
    """No value the page lacked is shown as null, undefined or NaN. Logs and diffs are the
    tasks' and git's own words (`--- /dev/null`), so they are left out of the check."""
    text: str = page.evaluate(
        """() => {
            const copy = document.body.cloneNode(true);
            copy.querySelectorAll("pre").forEach((pre) => pre.remove());
            document.body.append(copy);
            copy.hidden = false;
            const text = copy.innerText;
            copy.remove();
            return text;
        }"""
    )
    found = NOTHING.search(text)
    assert found is None, text[max(0, found.start() - 200) : found.end() + 200]


def save_screenshot(page: Page, name: str) -> None:
    keep = REPO_ROOT / "test-output" / name
    keep.parent.mkdir(exist_ok=True)
    page.screenshot(path=str(keep), full_page=True)


def waits_for(marker: Path) -> str:
    return f"while [ ! -e {shlex.quote(str(marker))} ]; do sleep 0.05; done"


def task_row(page: Page, task_id: str) -> Any:
    return page.locator(f'tr.task[data-task="{task_id}"]')


# --- a run, live: timeline, log, diff, banner -----------------------------------------------


def test_a_run_shows_its_timeline_a_live_log_and_a_diff_and_lands(
    page: Page, server: LiveServer, tmp_path: Path
) -> None:
    release = tmp_path / "release"
    slow = f"echo 'first line'; {waits_for(release)}; echo after > after.txt; cat after.txt"
    plan = {"tasks": [{"id": "slow", "run": slow}, {"id": "quick", "run": "echo q > q.txt"}]}
    project_id = register(server.url, a_repo(tmp_path), plan)
    open_project(page, server, project_id)
    expect(page.locator("#no-run")).to_have_text("No run yet: Start runs the plan.")
    nothing_shown_as_null(page)

    page.locator("#start").click()
    expect(task_row(page, "slow")).to_have_attribute("data-status", "running")
    task_row(page, "slow").locator("a.task-link").click()
    expect(page.locator("#task-log")).to_contain_text("first line")  # while it runs
    expect(task_row(page, "slow")).to_have_attribute("data-status", "running")
    expect(page.locator('#timeline rect[data-kind="attempt"][data-task="slow"]')).to_have_count(1)
    expect(page.locator("#run-outcome")).not_to_contain_text("Landed")  # mid-run: not yet
    nothing_shown_as_null(page)
    save_screenshot(page, "dashboard-running.png")

    release.touch()
    expect(page.locator("#task-log")).to_contain_text("after")  # followed live
    expect(page.locator("#run")).to_have_attribute("data-status", "landed")
    expect(page.locator("#run-outcome")).to_contain_text("Landed ")
    expect(page.locator("#run-outcome")).to_contain_text("on main")
    for kind in ("batch", "merge", "land"):
        expect(page.locator(f'#timeline [data-kind="{kind}"]').first).to_be_attached()
    page.locator("#tab-diff").click()
    expect(page.locator("#task-diff")).to_contain_text("+after")
    expect(page.locator("#task-panel")).to_contain_text("after.txt")
    nothing_shown_as_null(page)

    page.reload()  # the whole log again, not just its last line
    expect(page.locator("#task-log")).to_contain_text("first line")
    expect(page.locator("#task-log")).to_contain_text("after")


def test_the_dashboard_needs_the_token_for_its_buttons(
    page: Page, server: LiveServer, tmp_path: Path
) -> None:
    project_id = register(server.url, a_repo(tmp_path))
    refused = page.goto(f"{server.url}/")
    assert refused is not None
    assert refused.status == 401
    assert "?token=" in refused.text()  # says which address to open
    assert not page.context.cookies()
    open_project(page, server, project_id)
    [cookie] = page.context.cookies()
    assert cookie["httpOnly"]
    assert cookie["sameSite"] == "Strict"
    assert TOKEN not in cookie["value"]
    assert page.evaluate("() => document.cookie") == ""  # the page's scripts cannot read it
    expect(page.locator("#start")).to_be_enabled()
    # The cookie gone (the token changed, the browser forgot it): the page says so, and its
    # buttons are disabled.
    page.context.clear_cookies()
    page.evaluate("() => window.dispatchEvent(new HashChangeEvent('hashchange'))")
    expect(page.locator("#token-missing")).to_be_visible()
    expect(page.locator("#start")).to_be_disabled()
    nothing_shown_as_null(page)


# --- a failed run: no Landed banner, the culprit's test output, Skip, Land, Retry -----------

CULPRIT_PLAN: dict[str, Any] = {
    "retries": 0,
    "test_command": "test ! -e BROKEN || { echo 'FAILED tests/t.py::test_sum - boom'; exit 1; }",
    "tasks": [
        {"id": "good", "run": "echo good > good.txt"},
        {"id": "culprit", "run": "echo broken > BROKEN"},
        {"id": "broken", "run": "echo 'no network' >&2; exit 3"},
        {"id": "later", "run": "echo l > l.txt", "depends_on": ["good"]},
        {"id": "needy", "run": "echo n > n.txt", "depends_on": ["broken"]},
    ],
}


def test_a_failed_run_shows_its_tested_work_its_culprit_and_no_landed_banner_then_skip(
    page: Page, server: LiveServer, tmp_path: Path
) -> None:
    project_id = register(server.url, a_repo(tmp_path), CULPRIT_PLAN)
    open_project(page, server, project_id)
    page.locator("#start").click()

    expect(page.locator("#run")).to_have_attribute("data-status", "failed")
    expect(page.locator("#run-outcome")).to_contain_text("Failed: task 'broken'")
    expect(page.locator("body")).not_to_contain_text("Landed")  # main never moved
    expect(page.locator("#landable")).to_contain_text("main did not move")
    expect(page.locator("#landable")).to_contain_text("plait land")
    expect(page.locator("#land")).to_be_enabled()
    expect(task_row(page, "later")).to_contain_text("not started: the run failed")
    page.locator('details.tests[data-batch="1"] summary').click()
    why = page.locator('details.tests[data-batch="1"] .culprit-why')
    expect(why).to_contain_text("culprit")
    expect(why).to_contain_text("tests/t.py::test_sum")
    expect(why).to_contain_text("bisection")
    failing = page.locator('details.tests[data-batch="1"] mark.fail-line')
    expect(failing.first).to_contain_text("FAILED tests/t.py::test_sum")
    nothing_shown_as_null(page)
    save_screenshot(page, "dashboard-failed.png")

    task_row(page, "broken").locator("button.skip").click()

    expect(page.locator("#run")).to_have_attribute("data-status", "landed")
    expect(task_row(page, "broken")).to_have_attribute("data-status", "skipped")
    expect(task_row(page, "needy")).to_contain_text("depends on 'broken', which was skipped")
    expect(task_row(page, "later")).to_have_attribute("data-status", "landed")
    expect(page.locator("#run-outcome")).to_contain_text("Landed ")
    expect(page.locator("#run-outcome")).to_contain_text("on main")
    nothing_shown_as_null(page)


def test_land_from_the_page_lands_a_failed_runs_tested_work(
    page: Page, server: LiveServer, tmp_path: Path
) -> None:
    repo = a_repo(tmp_path)
    project_id = register(server.url, repo, CULPRIT_PLAN)
    open_project(page, server, project_id)
    page.locator("#start").click()
    expect(page.locator("#run")).to_have_attribute("data-status", "failed")

    page.locator("#land").click()

    expect(page.locator("#run")).to_have_attribute("data-status", "landed")
    expect(task_row(page, "later")).to_have_attribute("data-status", "skipped")
    assert (repo / "good.txt").exists()


def test_retry_from_the_page_runs_the_task_again_with_its_attempts_kept_apart(
    page: Page, server: LiveServer, tmp_path: Path
) -> None:
    marker = tmp_path / "network-is-back"
    flaky = (
        f"if [ -e {shlex.quote(str(marker))} ]; then echo 'second try works'; echo ok > f.txt; "
        "else echo 'first try fails'; exit 1; fi"
    )
    plan = {"retries": 0, "tasks": [{"id": "flaky", "run": flaky}]}
    project_id = register(server.url, a_repo(tmp_path), plan)
    open_project(page, server, project_id)
    page.locator("#start").click()
    expect(page.locator("#run")).to_have_attribute("data-status", "failed")
    marker.touch()

    task_row(page, "flaky").locator("button.retry").click()

    expect(page.locator("#run")).to_have_attribute("data-status", "landed")
    task_row(page, "flaky").locator("a.task-link").click()
    attempts = page.locator("#task-panel button.attempt")
    expect(attempts).to_have_count(2)
    expect(page.locator("#task-log")).to_contain_text("second try works")
    expect(page.locator("#task-log")).not_to_contain_text("first try fails")
    attempts.nth(0).click()
    expect(page.locator('#task-log[data-attempt="1"]')).to_contain_text("first try fails")
    expect(page.locator("#task-log")).not_to_contain_text("second try works")
    nothing_shown_as_null(page)


def test_stop_then_resume_from_the_page(page: Page, server: LiveServer, tmp_path: Path) -> None:
    release = tmp_path / "release"
    plan = {"tasks": [{"id": "wait", "run": f"{waits_for(release)}; echo w > w.txt"}]}
    project_id = register(server.url, a_repo(tmp_path), plan)
    open_project(page, server, project_id)
    page.locator("#start").click()
    expect(task_row(page, "wait")).to_have_attribute("data-status", "running")

    page.locator("#stop").click()
    expect(page.locator("#run")).to_have_attribute("data-status", "stopped")
    expect(page.locator("#resume")).to_be_enabled()
    expect(page.locator("body")).not_to_contain_text("Landed")
    nothing_shown_as_null(page)
    release.touch()
    page.locator("#resume").click()

    expect(page.locator("#run")).to_have_attribute("data-status", "landed")
    expect(page.locator("#resume")).to_be_disabled()


def test_a_ready_run_shows_its_queue_then_the_round_that_landed_each_task(
    page: Page, server: LiveServer, tmp_path: Path
) -> None:
    release = tmp_path / "release"
    plan = {
        "schedule": "ready",
        "tasks": [
            {"id": "first", "run": "echo 1 > first.txt"},
            {"id": "held", "run": f"{waits_for(release)}; echo h > h.txt", "depends_on": ["first"]},
        ],
    }
    project_id = register(server.url, a_repo(tmp_path), plan)
    open_project(page, server, project_id)
    page.locator("#start").click()

    queue = page.locator("#ready-queue")
    expect(queue.locator('tr.task[data-task="held"]')).to_have_attribute("data-status", "running")
    expect(
        page.locator('article.batch[data-batch="1"] tr.task[data-task="first"]')
    ).to_have_attribute("data-status", "landed")
    expect(page.locator("body")).to_contain_text("ready")  # the run's schedule fact
    nothing_shown_as_null(page)
    release.touch()

    expect(page.locator("#run")).to_have_attribute("data-status", "landed")
    expect(page.locator("#ready-queue")).to_have_count(0)  # every task is in its round
    expect(
        page.locator('article.batch[data-batch="2"] tr.task[data-task="held"]')
    ).to_have_attribute("data-status", "landed")


# --- the run list ---------------------------------------------------------------------------


def test_the_run_list_filters_and_opens_a_run(
    page: Page, server: LiveServer, tmp_path: Path
) -> None:
    failing = {"retries": 0, "tasks": [{"id": "x", "run": "exit 1"}]}
    ok = register(server.url, a_repo(tmp_path, "ok"))
    bad = register(server.url, a_repo(tmp_path, "bad"), failing)
    with httpx.Client(base_url=server.url, timeout=60) as client:
        first = client.post(f"/api/projects/{ok}/parallel/start", headers=AUTH).json()["run_id"]
        second = client.post(f"/api/projects/{bad}/parallel/start", headers=AUTH).json()["run_id"]
    page.goto(f"{server.url}/?token={TOKEN}")
    runs = page.locator("#run-list a.run-link")
    expect(runs).to_have_count(2)
    expect(page.locator(f'a.run-link[data-run="{first}"]')).to_contain_text("landed")
    expect(page.locator(f'a.run-link[data-run="{second}"]')).to_contain_text("failed")

    page.locator("#run-status").select_option("failed")
    expect(runs).to_have_count(1)
    page.locator(f'a.run-link[data-run="{second}"]').click()
    expect(page).to_have_url(re.compile(f"#/runs/{second}$"))
    expect(page.locator("#run")).to_have_attribute("data-run", second)
    page.locator("#run-status").select_option("")
    page.locator("#run-search").fill("ok")
    expect(runs).to_have_count(1)
    expect(runs.first).to_have_attribute("data-run", first)


# --- one vocabulary -------------------------------------------------------------------------


def test_the_cli_the_api_and_the_page_use_the_same_words_for_one_run(
    page: Page, server: LiveServer, tmp_path: Path
) -> None:
    plan = {**CULPRIT_PLAN, "on_task_failure": "land"}
    project_id = register(server.url, a_repo(tmp_path), plan)
    open_project(page, server, project_id)
    page.locator("#start").click()
    expect(page.locator("#run")).to_have_attribute("data-status", "landed")
    run_id = page.locator("#run").get_attribute("data-run")
    assert run_id is not None

    with httpx.Client(base_url=server.url, timeout=60, headers=AUTH) as client:
        api = client.get(f"/api/runs/{run_id}").json()
    home = tmp_path / "home"
    home.mkdir()
    cli = json.loads(plait(home, sqlite_url(tmp_path), "status", run_id, "--json").out)
    text = plait(home, sqlite_url(tmp_path), "status", run_id).out
    page_words = {
        task: task_row(page, task).locator(".badge").inner_text() for task in api_tasks(api)
    }

    expected = {
        "good": "landed",
        "culprit": "ejected",
        "broken": "failed",
        "later": "landed",
        "needy": "skipped",
    }
    assert api_tasks(api) == api_tasks(cli) == page_words == expected
    assert api["status"] == cli["status"] == page.locator("#run .badge").inner_text() == "landed"
    for task, word in expected.items():
        assert re.search(rf"^  {task}\s+{word}\s", text, re.M), text
    assert f"run {run_id}: landed" in text


def api_tasks(view: dict[str, Any]) -> dict[str, str]:
    return {t["task_id"]: t["status"] for t in view["tasks"]}


# --- across a restart -----------------------------------------------------------------------


def test_the_dashboard_keeps_following_across_a_server_restart(page: Page, tmp_path: Path) -> None:
    store_url = sqlite_url(tmp_path)
    with live_server(new_app(tmp_path, store_url, heartbeat=1.0)) as first:
        project_id = register(first.url, a_repo(tmp_path))
        page.goto(f"{first.url}/?token={TOKEN}")
        expect(page.locator("#connection")).to_have_attribute("data-state", "live")
        port = int(first.url.rsplit(":", 1)[1])
    expect(page.locator("#connection")).not_to_have_attribute("data-state", "live")

    with live_server(new_app(tmp_path, store_url, heartbeat=1.0), port) as second:
        expect(page.locator("#connection")).to_have_attribute("data-state", "live")
        with httpx.Client(base_url=second.url, timeout=60) as client:
            started = client.post(f"/api/projects/{project_id}/parallel/start", headers=AUTH)
            assert started.status_code == 202
        run_id = started.json()["run_id"]
        # Only the event stream tells the page about a run started elsewhere.
        expect(page.locator("#run")).to_have_attribute("data-run", run_id)
        expect(page.locator("#run")).to_have_attribute("data-status", "landed")
