"""`plait demo`: a small sample repository and a plan that shows what plait does.

The repository is a tiny calculator package with a test suite. The plan has 10 tasks in 3
batches: four run in parallel in batch 1, two of which append to the same CHANGELOG line
(a merge conflict, re-run on the new tip), and one "optimises" `add` into a bug (the culprit
the tests catch and bisection names). Batch 2 builds on batch 1's landed work, four tasks
three at a time; one of them, `rates`, fails (it wants a network), so the run stops after
batch 2 with its tested work on the run's result branch: `plait land` lands it, `plait skip
RUN rates` goes on to batch 3 without `rates` (and without `convert`, which needs it).
"""

from __future__ import annotations

import importlib.util
import shlex
import subprocess
import sys
from pathlib import Path

import yaml

DEMO_MARKER = ".plait-demo"

FILES = {
    "calc/__init__.py": '"""A tiny calculator."""\n',
    "calc/ops.py": "def add(a, b):\n    return a + b\n",
    "tests/__init__.py": "",
    "tests/test_ops.py": (
        "import unittest\n\nfrom calc.ops import add\n\n\n"
        "class AddTest(unittest.TestCase):\n"
        "    def test_add_sums_two_numbers(self):\n"
        "        self.assertEqual(add(2, 3), 5)\n"
    ),
    "CHANGELOG.md": "# Changelog\n\n",
    ".gitignore": "__pycache__/\n.pytest_cache/\n",
}

# tools/task.py: what each demo task "codes". A real plan would call an agent instead.
TASK_SCRIPT = r'''"""Writes the files of one demo task (a stand-in for a coding agent)."""
import sys
import time
from pathlib import Path

MODULE = "def {name}(a, b):\n    return {expr}\n"
TEST = (
    "import unittest\n\nfrom calc.{name} import {name}\n\n\n"
    "class {cls}Test(unittest.TestCase):\n"
    "    def test_{name}(self):\n        self.assertEqual({name}({a}, {b}), {want})\n"
)
OPS = {
    "subtract": ("a - b", 7, 2, 5),
    "multiply": ("a * b", 3, 4, 12),
    "divide": ("a / b", 8, 2, 4),
    "power": ("a ** b", 2, 5, 32),
    "modulo": ("a % b", 7, 3, 1),
}


def write(path, text, append=False):
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a" if append else "w") as out:
        out.write(text)


def main(task):
    time.sleep(1)  # pretend to think, so the parallel batch is visible
    print(f"working on {task}")
    if task in OPS:
        expr, a, b, want = OPS[task]
        write(f"calc/{task}.py", MODULE.format(name=task, expr=expr))
        test = TEST.format(name=task, cls=task.title(), a=a, b=b, want=want)
        write(f"tests/test_{task}.py", test)
        if task in ("subtract", "multiply"):
            write("CHANGELOG.md", f"- added {task}\n", append=True)
    elif task == "docs":
        write("docs/usage.md", "# Usage\n\n`from calc.ops import add`\n")
    elif task == "fast-add":
        write("calc/ops.py", "def add(a, b):\n    return a - b  # faster!\n")
    elif task == "rates":
        print("fetching exchange rates from https://rates.invalid ...")
        print("error: cannot reach rates.invalid (the demo has no network)", file=sys.stderr)
        sys.exit(1)
    elif task == "convert":
        write("calc/convert.py", "def convert(amount, rate):\n    return amount * rate\n")
    elif task == "cli":
        write("calc/cli.py", "import sys\n\nfrom calc.ops import add\n\n"
              "def main():\n    print(add(*map(int, sys.argv[1:3])))\n")
    print(f"{task}: done")


main(sys.argv[1])
'''


def _tasks(python: str) -> list[dict[str, object]]:
    def task(task_id: str, title: str, depends_on: list[str] | None = None) -> dict[str, object]:
        return {
            "id": task_id,
            "title": title,
            "run": f"{python} tools/task.py {task_id}",
            "depends_on": depends_on or [],
        }

    return [
        task("subtract", "Add subtraction"),
        task("multiply", "Add multiplication"),
        task("docs", "Write usage docs"),
        task("fast-add", "Make add faster (breaks it)"),
        task("divide", "Add division", ["multiply"]),
        task("power", "Add powers", ["multiply"]),
        task("modulo", "Add modulo", ["subtract"]),
        task("rates", "Fetch exchange rates (fails: no network)", ["multiply"]),
        task("cli", "Add a command line", ["divide", "power"]),
        task("convert", "Convert amounts with the rates", ["rates"]),
    ]


def test_command(python: str) -> str:
    if importlib.util.find_spec("pytest") is not None:
        return f"{python} -m pytest -q -p no:cacheprovider"
    return f"{python} -m unittest -q"


def create_demo(directory: Path) -> tuple[Path, Path]:
    """Create the sample repository and its plan under `directory`; return both paths.
    DEMO_MARKER says the directory is a demo's, which the next demo may replace."""
    repo = directory / "calculator"
    repo.mkdir(parents=True)
    (directory / DEMO_MARKER).write_text("made by plait demo\n", encoding="utf-8")
    for name, text in {**FILES, "tools/task.py": TASK_SCRIPT}.items():
        path = repo / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    python = shlex.quote(sys.executable)
    _git(repo, "init", "--quiet", "--initial-branch=main")
    _git(repo, "add", "-A")
    _git(
        repo,
        "-c",
        "user.name=plait demo",
        "-c",
        "user.email=demo@plait.invalid",
        "commit",
        "--quiet",
        "-m",
        "A tiny calculator",
    )
    plan = {
        "max_concurrency": 3,
        "retries": 0,
        "test_command": test_command(python),
        "tasks": _tasks(python),
    }
    plan_path = directory / "plan.yaml"
    plan_path.write_text(yaml.safe_dump(plan, sort_keys=False), encoding="utf-8")
    return repo, plan_path


def _git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", *args], cwd=repo, check=True, stdin=subprocess.DEVNULL, capture_output=True
    )
