"""`serve()`: a real uvicorn process that prints its dashboard address and stops cleanly."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from plait.http.security import TOKEN_ENV
from plait.http.serve import serve

SERVE = (
    "import sys; from plait.http.serve import serve; "
    "sys.exit(serve('127.0.0.1', 0, sys.argv[1], None))"
)


@contextmanager
def serving(tmp_path: Path, env: dict[str, str]) -> Iterator[tuple[subprocess.Popen[str], str]]:
    process = subprocess.Popen(
        [sys.executable, "-c", SERVE, f"sqlite:///{tmp_path / 'plait.db'}"],
        env={**os.environ, "XDG_DATA_HOME": str(tmp_path / "data"), **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        for line in process.stdout:
            if "plait dashboard:" in line:
                yield process, line.split("plait dashboard:", 1)[1].strip()
                break
        else:
            raise AssertionError(f"serve exited with {process.wait()} before it was ready")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()


def test_serve_prints_the_dashboard_address_with_the_token_and_stops_cleanly(
    tmp_path: Path,
) -> None:
    with serving(tmp_path, {TOKEN_ENV: "env-token"}) as (process, address):
        base, _, token = address.partition("/?token=")
        assert base.startswith("http://127.0.0.1:")
        assert token == "env-token"
        assert httpx.get(f"{base}/healthz").json()["status"] == "ok"
        refused = httpx.post(f"{base}/api/projects", json={"path": "/"})
        assert refused.status_code == 401
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=60) == 0


def test_serve_generates_a_private_token_on_first_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    with serving(tmp_path, {}) as (process, address):
        token = address.partition("/?token=")[2]
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
    kept = tmp_path / "data" / "plait" / "token"
    assert kept.read_text().strip() == token
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600


def test_serve_refuses_an_unusable_database(capsys: pytest.CaptureFixture[str]) -> None:
    assert serve("127.0.0.1", 0, "mysql://nobody@nowhere/db", "token") == 2
    assert "unsupported database" in capsys.readouterr().err
