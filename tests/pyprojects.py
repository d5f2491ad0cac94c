"""Small real Python projects for the tests: a git repository with a package, its pytest
suite and a pyproject.toml, tested with this environment's own pytest."""

from __future__ import annotations

import shlex
import sys
from collections.abc import Mapping
from pathlib import Path

from tests.gitrepo import git, make_repo

PYTHON = shlex.quote(sys.executable)
# This environment's pytest without its plugins (asyncio, hypothesis, ...): quicker, and
# the sample suites need none of them.
PYTEST = f"PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 {PYTHON} -m pytest -q -p no:cacheprovider"
PYPROJECT = """\
[project]
name = "sample"
version = "0.1.0"

[tool.pytest.ini_options]
pythonpath = ["."]
testpaths = ["tests"]
"""


def python_project(path: Path, files: Mapping[str, str]) -> Path:
    """make_repo's repository plus `files` (and a pyproject.toml and .gitignore for a
    Python project unless given), committed on main."""
    repo = make_repo(path)
    every = {
        ".gitignore": ".env\nbuild/\n__pycache__/\n.pytest_cache/\n.venv/\nnode_modules/\n",
        "pyproject.toml": PYPROJECT,
        **files,
    }
    for name, text in every.items():
        target = repo / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        git(repo, "add", "--", name)
    git(repo, "commit", "--quiet", "-m", "a Python project")
    return repo


def replace_in(name: str, old: str, new: str) -> str:
    """A shell command that rewrites `name` with `old` replaced by `new` (via Python, so no
    sed dialect matters)."""
    script = (
        "import pathlib, sys; p = pathlib.Path(sys.argv[1]); "
        "p.write_text(p.read_text().replace(sys.argv[2], sys.argv[3]))"
    )
    return " ".join(shlex.quote(word) for word in (sys.executable, "-c", script, name, old, new))
