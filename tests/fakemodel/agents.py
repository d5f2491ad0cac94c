"""Where the real agent CLIs are (installed by scripts/install-agents) and how tests find them."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

__all__ = ["agent_binary", "agents_bin_dir"]


def agents_bin_dir() -> Path:
    home = os.environ.get("PLAIT_AGENTS_HOME")
    if home:
        return Path(home) / "bin"
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "plait-agents" / "bin"


def agent_binary(name: str) -> Path:
    """The real CLI's path. In CI a missing CLI is a failure (install-agents must have run)."""
    path = agents_bin_dir() / name
    if path.exists() and shutil.which(str(path)):
        return path
    message = f"{name} is not installed in {agents_bin_dir()}: run scripts/install-agents"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)
