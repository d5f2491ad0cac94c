"""The watch on the user's checkout: which opens of its files count, with real processes
reading real files (Linux inotify)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from plait.execution.run.checkout_watch import CheckoutWatch

TRACKED = ["pyproject.toml", "tool.py", "src/pkg/__init__.py", "src/pkg/mod.py"]


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    root = tmp_path / "checkout"
    for name in [*TRACKED, "untracked.txt", "src/pkg/__pycache__/mod.cpython-311.pyc"]:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text("x\n")
    return root


def opened_by(checkout: Path, worktrees: Path, *files: str) -> list[str]:
    watch = CheckoutWatch.start(checkout, TRACKED, worktrees)
    assert watch is not None, "inotify is not available"
    subprocess.run(["cat", *files], cwd=checkout, check=True, capture_output=True)
    return [str(Path(p).relative_to(checkout)) for p in watch.stop()]


def test_reading_a_tracked_file_or_its_bytecode_counts(checkout: Path, tmp_path: Path) -> None:
    files = ("src/pkg/mod.py", "src/pkg/__pycache__/mod.cpython-311.pyc", "untracked.txt")
    assert opened_by(checkout, tmp_path / "worktrees", *files) == [
        "src/pkg/__pycache__/mod.cpython-311.pyc",
        "src/pkg/mod.py",
    ]


def test_above_a_worktree_inside_the_checkout_only_code_counts(checkout: Path) -> None:
    # pytest, ruff and editorconfig look for their configuration in every parent directory.
    worktrees = checkout / ".git" / "plait-worktrees"
    assert opened_by(checkout, worktrees, "pyproject.toml", "tool.py") == ["tool.py"]


def test_with_the_worktrees_elsewhere_every_tracked_file_counts(
    checkout: Path, tmp_path: Path
) -> None:
    assert opened_by(checkout, tmp_path / "worktrees", "pyproject.toml") == ["pyproject.toml"]


def test_nothing_opened_while_the_watch_is_off_counts(checkout: Path, tmp_path: Path) -> None:
    (checkout / "src/pkg/mod.py").read_text()
    watch = CheckoutWatch.start(checkout, TRACKED, tmp_path / "worktrees")
    assert watch is not None
    assert watch.stop() == []
    (checkout / "src/pkg/mod.py").read_text()
