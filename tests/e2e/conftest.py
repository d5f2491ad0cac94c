"""What the end-to-end tests of the `plait` command share: a data directory, a database and
a repository of their own for each test."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.gitrepo import make_repo


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """Where plait keeps its data for these runs (never the real user's data directory)."""
    path = tmp_path / "home"
    path.mkdir()
    return path


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'plait.db'}"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "repo")
