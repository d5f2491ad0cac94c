"""Real git repositories for tests: built with the git CLI in a temporary directory.

Identity is set in each repository's own config, never globally.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ENV = {
    **{k: v for k, v in os.environ.items() if not k.startswith("GIT_")},
    "GIT_CONFIG_NOSYSTEM": "1",
    "LC_ALL": "C",
}


def git(cwd: Path, *args: str) -> str:
    """Run git synchronously in `cwd` and return its stripped stdout; fail the test on error."""
    done = subprocess.run(
        ["git", *args], cwd=cwd, env=ENV, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, f"git {' '.join(args)} failed: {done.stderr}"
    return done.stdout.strip()


def commit_file(repo: Path, name: str, content: str, message: str | None = None) -> str:
    """Write `name`, commit it, return the new HEAD sha."""
    path = repo / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content)
    git(repo, "add", "--", name)
    git(repo, "commit", "--quiet", "-m", message or f"change {name}")
    return git(repo, "rev-parse", "HEAD")


def make_repo(path: Path, *, identity: bool = True) -> Path:
    """A repository on branch `main` with three commits and a `.gitignore` for `.env`."""
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "--quiet", "--initial-branch=main")
    if identity:
        git(path, "config", "user.name", "Test User")
        git(path, "config", "user.email", "test@example.invalid")
    git(path, "config", "commit.gpgsign", "false")
    author = [
        "-c", "user.name=Setup", "-c", "user.email=setup@example.invalid",
    ]  # fmt: skip
    for name, content in [
        (".gitignore", ".env\nbuild/\n"),
        ("README.md", "# demo\n"),
        ("src/app.txt", "line 1\nline 2\nline 3\n"),
    ]:
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_text(content)
        git(path, "add", "--", name)
        git(path, *author, "commit", "--quiet", "-m", f"add {name}")
    return path
