"""The tests see the merged commit, in an environment of their own.

A src-layout package installed editable (`pip install -e .`, real pip) into a venv built
from the user's checkout: tests run with that venv import the user's files, not the merged
commit's, and the run is refused before any task. With a venv built inside the integration
worktree instead, the culprit is found; that setup runs once and is reused while
pyproject.toml is unchanged. The user's own venv is left as it was.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.gitrepo import git
from tests.pyprojects import (
    PYTEST,
    editable_target,
    install_editable,
    make_venv,
    replace_in,
    src_layout_project,
    worktree_venv_setup,
)
from tests.reliability.fault_helpers import files_on, open_harness, plan, task, write

SAMPLE = {
    "src/sample/__init__.py": "",
    "src/sample/core.py": "VALUE = 1\n\n\ndef double(x):\n    return 2 * x\n",
    "tests/test_core.py": (
        "from sample.core import VALUE, double\n\n\n"
        "def test_value():\n    assert VALUE == 1\n\n\n"
        "def test_double():\n    assert double(2) == 4\n"
    ),
}
INNOCENT = task(
    "innocent",
    write("src/sample/extra.py", "def triple(x):\n    return 3 * x")
    + " && "
    + write(
        "tests/test_extra.py",
        "from sample.extra import triple\n\n\ndef test_triple():\n    assert triple(2) == 6",
    ),
)
BREAKER = task("breaker", replace_in("src/sample/core.py", "return 2 * x", "return 3 * x"))


def pytest_in(venv: Path | str) -> str:
    return f"PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 {venv}/bin/python -m pytest -q -p no:cacheprovider"


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    return src_layout_project(tmp_path / "checkout", SAMPLE)


@pytest.fixture
def user_venv(tmp_path: Path, checkout: Path) -> Path:
    """The user's own venv, outside the checkout, with the checkout installed editable."""
    venv = make_venv(tmp_path / "user-venv")
    install_editable(venv, checkout)
    return venv


async def test_tests_run_with_a_venv_that_imports_the_users_checkout_refuse_the_run(
    tmp_path: Path, store_url: str, checkout: Path, user_venv: Path
) -> None:
    before = git(checkout, "rev-parse", "main")
    async with open_harness(tmp_path, store_url=store_url, repo=checkout) as h:
        done = await h.run(plan(INNOCENT, BREAKER, test_command=pytest_in(user_venv)))
    assert done.result.status == "failed"
    assert done.of_type("TaskStarted") == []
    assert git(checkout, "rev-parse", "main") == before
    [baseline] = done.of_type("BaselineTested")
    assert f"{checkout}/src/sample/core.py" in baseline["outside_reads"]
    problem = baseline["problem"]
    assert f"{checkout}/src/sample/" in problem
    assert f"runs {user_venv}/bin/python" in problem
    assert "editable install" in problem
    assert "test_setup_command" in problem  # the fix
    assert problem in (done.result.error or "")


async def test_tests_that_import_the_users_checkout_through_pythonpath_refuse_the_run(
    tmp_path: Path, store_url: str, checkout: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHONPATH", str(checkout / "src"))
    async with open_harness(tmp_path, store_url=store_url, repo=checkout) as h:
        done = await h.run(plan(INNOCENT, BREAKER, test_command=PYTEST))
    assert done.result.status == "failed"
    assert done.of_type("TaskStarted") == []
    [baseline] = done.of_type("BaselineTested")
    assert f"PYTHONPATH names {checkout}/src, in your checkout" in baseline["problem"]


async def test_a_refused_run_takes_its_baseline_again_on_resume_and_runs_once_it_is_fixed(
    tmp_path: Path, store_url: str, checkout: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHONPATH", str(checkout / "src"))
    async with open_harness(tmp_path, store_url=store_url, repo=checkout) as h:
        refused = await h.run(
            plan(
                INNOCENT,
                test_setup_command=worktree_venv_setup(),
                keep_ignored=[".venv"],
                test_command=pytest_in(".venv"),
            )
        )
        assert refused.result.status == "failed"
        monkeypatch.delenv("PYTHONPATH")  # the user follows the advice
        await h.service.resume_run(await h.project(), refused.run_id)
        done = await h.finish(refused.run_id)
    assert done.result.status == "landed", done.result.error
    first, second = done.of_type("BaselineTested")
    assert (first["allowed"], second["allowed"]) == (False, True)
    assert second["outside_reads"] == []
    assert "src/sample/extra.py" in files_on(checkout, "main")


async def test_with_a_venv_inside_the_worktree_the_culprit_is_found_and_the_setup_reused(
    tmp_path: Path, store_url: str, checkout: Path, user_venv: Path
) -> None:
    async with open_harness(tmp_path, store_url=store_url, repo=checkout) as h:
        done = await h.run(
            plan(
                INNOCENT,
                BREAKER,
                test_setup_command=worktree_venv_setup(),
                keep_ignored=[".venv"],
                setup_inputs=["pyproject.toml"],
                test_command=pytest_in(".venv"),
            )
        )
    assert done.result.status == "landed", done.result.error
    [culprit] = done.of_type("CulpritFound")
    assert culprit["task_id"] == "breaker"
    assert culprit["broke_tests"] == ["tests.test_core::test_double"]
    assert {"src/sample/extra.py", "tests/test_extra.py"} <= files_on(checkout, "main")
    assert "return 2 * x" in git(checkout, "show", "main:src/sample/core.py")
    # Built once for the baseline, then reused: pyproject.toml never changed.
    [baseline] = done.of_type("BaselineTested")
    assert baseline["setup"] == "ran"
    verdicts = done.of_type("TestsPassed", "TestsFailed")
    assert len(verdicts) >= 3
    assert {v["setup"] for v in verdicts} == {"reused"}
    # The user's own venv still imports the user's checkout.
    assert editable_target(user_venv) == str(checkout / "src")


async def test_a_setup_that_would_install_into_the_users_activated_venv_leaves_it_alone(
    tmp_path: Path,
    store_url: str,
    checkout: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    venv = make_venv(tmp_path / "user-venv", with_pip=True)
    install_editable(venv, checkout)
    # As `source user-venv/bin/activate` leaves the shell plait is started from.
    monkeypatch.setenv("VIRTUAL_ENV", str(venv))
    monkeypatch.setenv("PATH", f"{venv}/bin:/usr/bin:/bin")
    async with open_harness(tmp_path, store_url=store_url, repo=checkout) as h:
        done = await h.run(
            plan(
                INNOCENT,
                setup_command="pip install --no-index -e .",  # the old docs' example
                test_command=pytest_in(venv),
            )
        )
    assert editable_target(venv) == str(checkout / "src")
    assert done.result.status == "failed"
    error = done.result.error or ""
    assert "setup_command failed in the integration worktree" in error
    assert f"without the virtualenv it was started in ({venv})" in error
    assert done.of_type("TaskStarted") == []
