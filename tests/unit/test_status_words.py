"""Statuses are the domain's StrEnums: nothing in plait outside plait/domain compares a
status word as a string literal (`status == "landed"`, `x in ("failed", "stopped")`), so a
renamed or removed status cannot leave a comparison behind that is silently never true."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

from plait.domain.statuses import BatchStatus, RunStatus, TaskStatus

PACKAGE = Path(__file__).resolve().parents[2] / "plait"
WORDS = {str(s) for kind in (TaskStatus, RunStatus, BatchStatus) for s in kind}


def _literals(node: ast.expr) -> Iterator[str]:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        yield node.value
    elif isinstance(node, ast.Tuple | ast.List | ast.Set):
        for item in node.elts:
            yield from _literals(item)


def _comparisons(path: Path) -> Iterator[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            for side in (node.left, *node.comparators):
                for word in _literals(side):
                    if word in WORDS:
                        yield node.lineno, word
        elif isinstance(node, ast.MatchValue):
            for word in _literals(node.value):
                if word in WORDS:
                    yield node.lineno, word


def test_no_status_word_is_compared_as_a_string_outside_the_domain() -> None:
    found = [
        f"{path.relative_to(PACKAGE.parent)}:{line}: {word!r}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if "domain" not in path.relative_to(PACKAGE).parts[:1]
        for line, word in _comparisons(path)
    ]
    assert found == []


def test_the_scan_finds_a_status_word_compared_as_a_string(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text('if run.status == "landed" or x in ("failed", "other"):\n    pass\n')
    assert sorted(word for _, word in _comparisons(sample)) == ["failed", "landed"]
