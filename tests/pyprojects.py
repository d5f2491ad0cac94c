"""Small real Python projects for the tests: a git repository with a package, its pytest
suite and a pyproject.toml, tested with this environment's own pytest."""

from __future__ import annotations

import shlex
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest

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


# A minimal in-tree PEP 517/660 build backend, so that a real `pip install -e .` works with
# no index and no setuptools: the editable wheel holds a .pth naming the project's src/,
# as setuptools' own editable install of a src layout does.
EDITABLE_BACKEND = """\
import base64, hashlib, os, zipfile

NAME, VERSION = "sample", "0.1.0"
DIST = f"{NAME}-{VERSION}.dist-info"


def _line(name, data):
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def _wheel(directory, files):
    metadata = f"Metadata-Version: 2.1\\nName: {NAME}\\nVersion: {VERSION}\\n"
    files[f"{DIST}/METADATA"] = metadata.encode()
    files[f"{DIST}/WHEEL"] = b"Wheel-Version: 1.0\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n"
    record = [_line(n, d) for n, d in files.items()] + [f"{DIST}/RECORD,,"]
    files[f"{DIST}/RECORD"] = ("\\n".join(record) + "\\n").encode()
    name = f"{NAME}-{VERSION}-py3-none-any.whl"
    with zipfile.ZipFile(os.path.join(directory, name), "w") as wheel:
        for n, d in files.items():
            wheel.writestr(n, d)
    return name


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    src = os.path.abspath("src")
    return _wheel(wheel_directory, {f"__editable__.{NAME}.pth": (src + "\\n").encode()})


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    files = {}
    for root, _, names in os.walk("src"):
        for n in names:
            if n.endswith(".py"):
                with open(os.path.join(root, n), "rb") as source:
                    files[os.path.relpath(os.path.join(root, n), "src")] = source.read()
    return _wheel(wheel_directory, files)
"""
SRC_LAYOUT_PYPROJECT = """\
[build-system]
requires = []
build-backend = "editable_backend"
backend-path = ["_build"]

[project]
name = "sample"
version = "0.1.0"

[tool.pytest.ini_options]
testpaths = ["tests"]
"""
# Where a venv made from this Python keeps its packages, relative to the venv.
SITE_PACKAGES = f"lib/python{sys.version_info.major}.{sys.version_info.minor}/site-packages"


def src_layout_project(path: Path, files: Mapping[str, str]) -> Path:
    """A src-layout package `sample` that only imports once installed (no pythonpath)."""
    return python_project(
        path,
        {
            "pyproject.toml": SRC_LAYOUT_PYPROJECT,
            "_build/editable_backend.py": EDITABLE_BACKEND,
            **files,
        },
    )


def _test_tools_pth() -> str:
    """A .pth line that lets a new venv import this environment's pytest: the venvs here are
    made without an index to install it from."""
    return str(Path(pytest.__file__).parent.parent)


def make_venv(path: Path, *, with_pip: bool = False) -> Path:
    """A real venv at `path` that can import pytest; with pip of its own if asked."""
    argv = [sys.executable, "-m", "venv", str(path)]
    subprocess.run(argv if with_pip else [*argv, "--without-pip"], check=True)
    (path / SITE_PACKAGES / "_test_tools.pth").write_text(_test_tools_pth() + "\n")
    return path


def install_editable(venv: Path, project: Path) -> None:
    """`pip install -e project` into `venv`, with no index (the project builds itself)."""
    subprocess.run(
        [*_PIP, "--python", str(venv / "bin" / "python"), "install", "--no-index", "-e", project],
        check=True,
    )


_PIP = [sys.executable, "-m", "pip", "--quiet", "--disable-pip-version-check", "--no-input"]


def worktree_venv_setup() -> str:
    """A test_setup_command that builds `.venv` inside the worktree and installs the worktree
    itself into it, editable (the per-worktree environment of docs/plan-format.md)."""
    pip = " ".join(shlex.quote(word) for word in _PIP)
    tools = shlex.quote(_test_tools_pth())
    return (
        f"{PYTHON} -m venv --without-pip .venv"
        f" && {pip} --python .venv/bin/python install --no-index -e ."
        f" && echo {tools} > .venv/{SITE_PACKAGES}/_test_tools.pth"
    )


def editable_target(venv: Path) -> str:
    """Where a venv's editable install of `sample` points."""
    return (venv / SITE_PACKAGES / "__editable__.sample.pth").read_text().strip()
