"""The tests judge the exact merged commit: no bytecode of another commit, and on an allowed
red base, which tests fail now that did not before (JUnit), not merely that some do.

Real Python projects in temporary git repositories, tested with real pytest runs.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.gitrepo import git
from tests.pyprojects import PYTEST, python_project, replace_in
from tests.reliability.fault_helpers import files_on, open_harness, plan, task, write

# Every tracked .py gets the same mtime before the tests run: what a checkout made within
# the same second as the last import amounts to, without depending on the clock. A .pyc
# is trusted while its source's size and mtime match.
SAME_SECOND = "find . -name '*.py' -not -path './.git/*' -exec touch -d @946684800 {} +"


@pytest.fixture
def bytecode_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """Python writes and trusts .pyc files, as it does by default for a user."""
    monkeypatch.delenv("PYTHONDONTWRITEBYTECODE", raising=False)
    monkeypatch.delenv("PYTHONPYCACHEPREFIX", raising=False)


@pytest.mark.usefixtures("bytecode_on")
async def test_a_same_size_edit_is_judged_by_its_source_not_by_bytecode_of_another_commit(
    tmp_path: Path, store_url: str
) -> None:
    repo = python_project(
        tmp_path / "repo",
        {
            "pkg/__init__.py": "",
            "pkg/mod.py": "VALUE = 1\n",
            "tests/test_base.py": "def test_base():\n    assert True\n",
        },
    )
    async with open_harness(tmp_path, store_url=store_url, repo=repo) as h:
        done = await h.run(
            plan(
                # `tests` adds the first test that imports pkg.mod; `culprit` breaks it with
                # an edit of the same size.
                task(
                    "tests",
                    write(
                        "tests/test_mod.py",
                        "from pkg.mod import VALUE\n\n\ndef test_value():\n    assert VALUE == 1",
                    ),
                ),
                task("docs", write("docs.txt", "docs")),
                task("notes", write("notes.txt", "notes")),
                task("culprit", replace_in("pkg/mod.py", "VALUE = 1", "VALUE = 2")),
                test_command=f"{SAME_SECOND} && {PYTEST}",
            )
        )
    assert done.result.status == "landed", done.result.error
    [culprit] = done.of_type("CulpritFound")
    assert culprit["task_id"] == "culprit"
    assert culprit["broke_tests"] == ["tests.test_mod::test_value"]
    on_main = files_on(repo, "main")
    assert {"tests/test_mod.py", "docs.txt", "notes.txt"} <= on_main
    assert git(repo, "show", "main:pkg/mod.py") == "VALUE = 1"


async def test_on_an_allowed_red_base_a_task_that_breaks_another_test_is_named_its_culprit(
    tmp_path: Path, store_url: str
) -> None:
    repo = python_project(
        tmp_path / "repo",
        {
            # sub() is broken on the base: test_sub fails before any task runs.
            "app.py": "def add(a, b):\n    return a + b\n\n\ndef sub(a, b):\n    return a + b\n",
            "tests/test_app.py": (
                "from app import add, sub\n\n\n"
                "def test_add():\n    assert add(2, 1) == 3\n\n\n"
                "def test_sub():\n    assert sub(2, 1) == 1\n"
            ),
        },
    )
    async with open_harness(tmp_path, store_url=store_url, repo=repo) as h:
        done = await h.run(
            plan(
                task("breaker", replace_in("app.py", "return a + b\n\n\n", "return a - b\n\n\n")),
                task("docs", write("NOTES.md", "notes")),
                test_command=PYTEST,
                allow_red_base=True,
            )
        )
    assert done.result.status == "landed", done.result.error
    assert [c["task_id"] for c in done.of_type("CulpritFound")] == ["breaker"]
    assert "return a + b" in git(repo, "show", "main:app.py").split("def sub")[0]
    [culprit] = done.of_type("CulpritFound")
    assert culprit["broke_tests"] == ["tests.test_app::test_add"]
    [baseline] = done.of_type("BaselineTested")
    assert (baseline["passed"], baseline["allowed"]) == (False, True)
    assert baseline["failed_tests"] == ["tests.test_app::test_sub"]
    newly = "tests.test_app::test_add"
    assert any(newly in f["failed_tests"] for f in done.of_type("TestsFailed"))
    assert "NOTES.md" in files_on(repo, "main")
