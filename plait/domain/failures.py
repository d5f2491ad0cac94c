"""Which tests failed, read from a test command's output.

A test command is any command, so this reads the summary lines of the runners people use
(pytest, unittest, go test, cargo test, Jest and Vitest) and nothing else: text that matches
none of them names no test, and the exit status stays the verdict.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

MAX_NAMES = 200

_PATTERNS = (
    # pytest's short summary: "FAILED tests/test_a.py::test_b - AssertionError: ..."
    re.compile(r"^(?:FAILED|ERROR) (?P<name>\S+::\S+)(?: - .*)?$"),
    # unittest: "FAIL: test_b (tests.test_a.ATest.test_b)", also "ERROR: ..."
    re.compile(r"^(?:FAIL|ERROR): (?P<name>\S+ \([\w.]+\))$"),
    # go test: "--- FAIL: TestB (0.00s)"
    re.compile(r"^\s*--- FAIL: (?P<name>\S+)(?: \([\d.]+s\))?$"),
    # cargo test: "test tests::b ... FAILED"
    re.compile(r"^test (?P<name>\S+) \.\.\. FAILED$"),
    # Jest and Vitest: "  \u2715 adds two numbers (3 ms)", "  \u00d7 adds two numbers"
    re.compile("^\\s+[\u2715\u00d7] (?P<name>.+?)(?: \\(\\d+ ?m?s\\))?$"),
)
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def failing_tests(output: str) -> list[str]:
    """The names of the tests `output` reports as failed, in order, each once."""
    names: dict[str, None] = {}
    for raw in output.splitlines():
        line = _ANSI.sub("", raw).rstrip()
        for pattern in _PATTERNS:
            found = pattern.match(line)
            if found:
                names.setdefault(found.group("name"), None)
                break
        if len(names) >= MAX_NAMES:
            break
    return list(names)


def named_failures(reported: Iterable[str], output: str) -> list[str]:
    """The failing tests of a red run: its JUnit report's ids when it has them, else the
    names its output gives (for display: only a report's ids are compared between runs)."""
    listed = list(reported)
    return listed if listed else failing_tests(output)
