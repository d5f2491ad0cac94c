"""plait on real projects nobody here wrote, as a new user would run it.

pallets/itsdangerous from its PyPI sdist (src layout, 297 tests of its own, flit_core as its
build backend), installed editable into the user's own venv. A user who tests with that
venv gets the run refused up front: its tests import the user's checkout, so they would
blame the innocent task and land the one that broke two tests. With a venv built inside the
integration worktree, plait names the culprit and the two tests it broke, and lands the
innocent task.

A Node project whose tests need its npm dependencies, installed per worktree by `npm ci`.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.gitrepo import git
from tests.pyprojects import PYTHON, SITE_PACKAGES, replace_in
from tests.reliability.fault_helpers import files_on, open_harness, plan, task, write
from tests.thirdparty import (
    NPM_PACKAGE,
    TEST_REQUIREMENTS,
    fetch_npm,
    fetch_python,
    require,
    unpack_sdist,
    wheelhouse,
)

pytestmark = pytest.mark.slow

IGNORED = "__pycache__/\n.pytest_cache/\n.venv/\nnode_modules/\n*.egg-info/\n"
# The innocent task: a new module with its own test. Tested against the user's checkout,
# that test cannot import the module, and the innocent task looks guilty.
INNOCENT = task(
    "fingerprint",
    write(
        "src/itsdangerous/fingerprint.py",
        "import hashlib\n\n\ndef fingerprint(data: bytes) -> str:\n"
        "    return hashlib.sha256(data).hexdigest()[:16]",
    )
    + " && "
    + write(
        "tests/test_itsdangerous/test_fingerprint.py",
        "from itsdangerous.fingerprint import fingerprint\n\n\n"
        "def test_fingerprint_is_short_and_stable():\n"
        "    assert fingerprint(b'x') == fingerprint(b'x')\n"
        "    assert len(fingerprint(b'x')) == 16",
    ),
)
# The culprit: int_to_bytes stops stripping leading zero bytes; two of the 297 tests fail.
CULPRIT = task(
    "int-bytes",
    replace_in(
        "src/itsdangerous/encoding.py",
        'return _int_to_bytes(num).lstrip(b"\\x00")',
        "return _int_to_bytes(num)",
    ),
)
BROKEN = [
    "tests.test_itsdangerous.test_encoding::test_int_bytes[0-]",
    "tests.test_itsdangerous.test_encoding::test_int_bytes[192-\\xc0]",
]


def pip_install(python: Path | str, *args: str) -> None:
    """pip for `python`'s environment, from the cached wheels only."""
    subprocess.run(
        [sys.executable, "-m", "pip", "--quiet", "--disable-pip-version-check", "--python",
         str(python), "install", "--no-index", "--find-links", str(wheelhouse()), *args],
        check=True,
    )  # fmt: skip


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """The sdist, unpacked and committed as the user's repository."""
    require(fetch_python())
    repo = unpack_sdist(tmp_path / "unpacked")
    (repo / ".gitignore").write_text(IGNORED)
    git(repo, "init", "--quiet", "--initial-branch=main")
    git(repo, "config", "user.name", "Test User")
    git(repo, "config", "user.email", "test@example.invalid")
    git(repo, "add", "--all")
    git(repo, "commit", "--quiet", "-m", "itsdangerous 2.2.0 from its sdist")
    return repo


@pytest.fixture
def user_venv(tmp_path: Path, checkout: Path) -> Path:
    """The user's venv, with the checkout installed editable (`pip install -e .`)."""
    venv = tmp_path / "user-venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    pip_install(venv / "bin" / "python", *TEST_REQUIREMENTS, "-e", str(checkout))
    return venv


def editable_target(venv: Path) -> str:
    return (venv / SITE_PACKAGES / "itsdangerous.pth").read_text().strip()


async def test_tests_run_with_the_users_editable_install_are_refused_before_any_task(
    tmp_path: Path, store_url: str, checkout: Path, user_venv: Path
) -> None:
    before = git(checkout, "rev-parse", "main")
    tests = f"{user_venv}/bin/python -m pytest -q -p no:cacheprovider"
    async with open_harness(tmp_path, store_url=store_url, repo=checkout) as h:
        done = await h.run(plan(INNOCENT, CULPRIT, test_command=tests))
    assert done.result.status == "failed"
    assert done.of_type("TaskStarted") == []
    assert git(checkout, "rev-parse", "main") == before
    [baseline] = done.of_type("BaselineTested")
    assert baseline["passed"] is False
    assert f"{checkout}/src/itsdangerous/__init__.py" in baseline["outside_reads"]
    assert f"runs {user_venv}/bin/python" in baseline["problem"]
    assert "test_setup_command" in baseline["problem"]


async def test_with_a_venv_in_the_worktree_the_culprit_and_the_tests_it_broke_are_named(
    tmp_path: Path, store_url: str, checkout: Path, user_venv: Path
) -> None:
    install = f"--no-index --find-links {wheelhouse()} {' '.join(TEST_REQUIREMENTS)}"
    async with open_harness(tmp_path, store_url=store_url, repo=checkout) as h:
        done = await h.run(
            plan(
                INNOCENT,
                CULPRIT,
                test_setup_command=f"{PYTHON} -m venv .venv && "
                f".venv/bin/pip install --quiet {install} -e .",
                keep_ignored=[".venv"],
                setup_inputs=["pyproject.toml"],
                test_command=".venv/bin/python -m pytest -q -p no:cacheprovider",
            )
        )
    assert done.result.status == "landed", done.result.error
    [culprit] = done.of_type("CulpritFound")
    assert culprit["task_id"] == "int-bytes"
    assert culprit["broke_tests"] == BROKEN
    on_main = files_on(checkout, "main")
    assert "src/itsdangerous/fingerprint.py" in on_main
    assert 'lstrip(b"\\x00")' in git(checkout, "show", "main:src/itsdangerous/encoding.py")
    [baseline] = done.of_type("BaselineTested")
    assert (baseline["passed"], baseline["setup"], baseline["problem"]) == (True, "ran", "")
    assert {v["setup"] for v in done.of_type("TestsPassed", "TestsFailed")} == {"reused"}
    assert editable_target(user_venv) == str(checkout / "src")


@pytest.fixture
def node_project(tmp_path: Path) -> Path:
    """A Node project whose test needs its dependency from npm, with its lockfile."""
    if shutil.which("npm") is None:
        pytest.skip("npm is not installed")
    require(fetch_npm())
    repo = tmp_path / "node-project"
    repo.mkdir()
    name, version = NPM_PACKAGE.rsplit("@", 1)
    package = {
        "name": "sample",
        "version": "1.0.0",
        "private": True,
        "dependencies": {name: version},
        "scripts": {
            "test": "node --test --test-reporter=junit --test-reporter-destination=report.xml"
        },
    }
    files = {
        "package.json": json.dumps(package, indent=2) + "\n",
        ".gitignore": "node_modules/\nreport.xml\n",
        "lib.js": "const isNumber = require('is-number');\n"
        "exports.double = (x) => { if (!isNumber(x)) throw new TypeError('x'); return 2 * x; };\n",
        "test/double.test.js": "const test = require('node:test');\n"
        "const assert = require('node:assert');\n"
        "const { double } = require('../lib.js');\n"
        "test('doubles', () => assert.strictEqual(double(2), 4));\n"
        "test('refuses text', () => assert.throws(() => double('a')));\n",
    }
    for path, text in files.items():
        (repo / path).parent.mkdir(parents=True, exist_ok=True)
        (repo / path).write_text(text)
    npm = ["npm", "--no-audit", "--no-fund", "--prefer-offline"]
    subprocess.run([*npm, "install", "--package-lock-only"], cwd=repo, check=True)
    git(repo, "init", "--quiet", "--initial-branch=main")
    git(repo, "config", "user.name", "Test User")
    git(repo, "config", "user.email", "test@example.invalid")
    git(repo, "add", "--all")
    git(repo, "commit", "--quiet", "-m", "a Node project")
    return repo


async def test_a_node_project_with_a_per_worktree_npm_ci_finds_its_culprit(
    tmp_path: Path, store_url: str, node_project: Path
) -> None:
    async with open_harness(tmp_path, store_url=store_url, repo=node_project) as h:
        done = await h.run(
            plan(
                task("readme", write("README.md", "# sample")),
                task("triple", replace_in("lib.js", "return 2 * x", "return 3 * x")),
                test_setup_command="npm ci --no-audit --no-fund --prefer-offline",
                keep_ignored=["node_modules"],
                setup_inputs=["package-lock.json"],
                junit_report="report.xml",
                test_command="npm test",
            )
        )
    assert done.result.status == "landed", done.result.error
    [culprit] = done.of_type("CulpritFound")
    assert culprit["task_id"] == "triple"
    assert culprit["broke_tests"] == ["test::doubles"]  # node's junit reporter: classname "test"
    assert "README.md" in files_on(node_project, "main")
    assert "return 2 * x" in git(node_project, "show", "main:lib.js")
    [baseline] = done.of_type("BaselineTested")
    assert (baseline["passed"], baseline["setup"]) == (True, "ran")
    assert {v["setup"] for v in done.of_type("TestsPassed", "TestsFailed")} == {"reused"}
    assert not (node_project / "node_modules").exists()  # nothing in the user's checkout
