"""Real projects nobody here wrote, for the tests to run plait on: a package's sdist from
PyPI with its own test suite, the wheels its tests need, and an npm package, all fetched
once into a cache outside the repository ($PLAIT_TEST_CACHE, else
~/.cache/plait-test-projects; npm keeps its own cache).

    python -m tests.thirdparty      # fetch what is missing (scripts/fetch-test-projects)

Offline, a test that needs them is skipped with the reason, except in CI (CI=true), where
it fails: CI must run them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

# pallets/itsdangerous: src layout, 297 tests, flit_core as its build backend.
SDIST = ("itsdangerous", "2.2.0")
# What its tests and its build need, pinned as its own requirements/tests.txt pins them.
WHEELS = (
    "freezegun==1.4.0",
    "iniconfig==2.0.0",
    "packaging==24.0",
    "pluggy==1.4.0",
    "pytest==8.1.1",
    "python-dateutil==2.9.0.post0",
    "six==1.16.0",
    "flit_core==3.9.0",
)
TEST_REQUIREMENTS = ("pytest==8.1.1", "freezegun==1.4.0")
NPM_PACKAGE = "is-number@7.0.0"


def cache_dir() -> Path:
    configured = os.environ.get("PLAIT_TEST_CACHE")
    return Path(configured) if configured else Path.home() / ".cache" / "plait-test-projects"


def sdist_path() -> Path:
    name, version = SDIST
    return cache_dir() / "sdists" / f"{name}-{version}.tar.gz"


def wheelhouse() -> Path:
    return cache_dir() / "wheels"


def _pip(*args: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input", *args]
    return subprocess.run(argv, capture_output=True, text=True, check=False)


def fetch_python() -> str | None:
    """Download the sdist and the wheels if missing; None, or why they could not be had."""
    name, version = SDIST
    if not sdist_path().exists():
        done = _pip(
            "download", "--no-deps", "--no-binary", ":all:", f"{name}=={version}",
            "-d", str(sdist_path().parent),
        )  # fmt: skip
        if done.returncode != 0:
            return f"pip download {name}=={version} failed: {done.stderr.strip()[-500:]}"
    marker = wheelhouse() / ".complete"
    if not marker.exists():
        done = _pip(
            "download", "--no-deps", "--only-binary", ":all:", "-d", str(wheelhouse()), *WHEELS
        )
        if done.returncode != 0:
            return f"pip download of the test wheels failed: {done.stderr.strip()[-500:]}"
        marker.write_text("\n".join(WHEELS) + "\n")
    return None


def fetch_npm() -> str | None:
    """Put the npm package into npm's own cache; None, or why it could not be. Without npm
    there is nothing to fetch: the Node test skips on its own."""
    npm = shutil.which("npm")
    if npm is None:
        return None
    done = subprocess.run(
        [npm, "cache", "add", NPM_PACKAGE], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        return f"npm cache add {NPM_PACKAGE} failed: {done.stderr.strip()[-500:]}"
    return None


def require(problem: str | None) -> None:
    """Skip the test for `problem` (offline), or fail it in CI."""
    if problem is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"CI must run this test, but: {problem}")
    pytest.skip(problem)


def unpack_sdist(into: Path) -> Path:
    """The sdist's project directory, unpacked below `into`."""
    name, version = SDIST
    with tarfile.open(sdist_path()) as archive:
        archive.extractall(into, filter="data")
    return into / f"{name}-{version}"


def main() -> int:
    problems = [p for p in (fetch_python(), fetch_npm()) if p is not None]
    for problem in problems:
        print(f"fetch-test-projects: {problem}", file=sys.stderr)
    if problems and os.environ.get("CI"):
        return 1
    print(f"fetch-test-projects: cache at {cache_dir()}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
