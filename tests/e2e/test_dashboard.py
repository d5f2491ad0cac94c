"""The dashboard in Debian's chromium: open it with the token, run a real plan, watch it land."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.integration.http_support import AUTH, TOKEN, a_repo, live_server, new_app

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
REPO_ROOT = Path(__file__).resolve().parents[2]
# A run takes seconds; this only keeps a broken page from hanging the suite.
PATIENCE_MS = 120_000

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
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    opened = context.new_page()
    opened.set_default_timeout(PATIENCE_MS)
    yield opened
    context.close()


def register(base_url: str, repo: Path) -> str:
    with httpx.Client(base_url=base_url, timeout=60) as client:
        response = client.post("/api/projects", json={"path": str(repo)}, headers=AUTH)
        project_id: str = response.json()["project_id"]
        put = client.put(f"/api/projects/{project_id}/plan", json=PLAN, headers=AUTH)
        assert put.status_code == 200, put.text
    return project_id


def save_screenshot(page: Page, tmp_path: Path) -> None:
    shot = tmp_path / "dashboard.png"
    page.screenshot(path=str(shot), full_page=True)
    keep = REPO_ROOT / "test-output" / "dashboard.png"
    keep.parent.mkdir(exist_ok=True)
    shutil.copyfile(shot, keep)


def test_the_dashboard_starts_a_run_and_shows_every_batch_done(page: Page, tmp_path: Path) -> None:
    with live_server(new_app(tmp_path, heartbeat=1.0)) as server:
        project_id = register(server.url, a_repo(tmp_path))

        page.goto(f"{server.url}/?token={TOKEN}")
        expect(page).to_have_url(f"{server.url}/")  # the token left the address bar
        expect(page.locator("#connection")).to_have_attribute("data-state", "live")
        page.locator(f'button[data-project="{project_id}"]').click()
        expect(page.locator("#token-missing")).to_be_hidden()
        page.locator("#start").click()

        expect(page.locator("#run")).to_have_attribute("data-status", "completed")
        batches = page.locator(".batch")
        expect(batches).to_have_count(2)
        for index in range(2):
            expect(batches.nth(index)).to_have_attribute("data-status", "completed")
        tasks = page.locator("li.task")
        expect(tasks).to_have_count(3)
        for index in range(3):
            expect(tasks.nth(index)).to_have_attribute("data-status", "merged")
        expect(page.locator('pre[data-task="hello"]')).to_contain_text("hi")
        expect(page.locator("#stop")).to_be_disabled()
        save_screenshot(page, tmp_path)


def test_the_dashboard_refuses_nothing_silently_without_a_token(page: Page, tmp_path: Path) -> None:
    with live_server(new_app(tmp_path, heartbeat=1.0)) as server:
        register(server.url, a_repo(tmp_path))
        page.goto(f"{server.url}/")
        expect(page.locator("#token-missing")).to_be_visible()
        expect(page.locator("#start")).to_be_disabled()


def test_the_dashboard_keeps_following_across_a_server_restart(page: Page, tmp_path: Path) -> None:
    store_url = f"sqlite:///{tmp_path / 'plait.db'}"
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
        expect(page.locator("#run")).to_have_attribute("data-status", "completed")
