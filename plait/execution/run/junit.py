"""Which tests failed, read from a JUnit XML report (pytest's --junitxml, node --test's junit
reporter, Maven Surefire, ...).

A test's id is `classname::name` (just `name` without a classname); a test case counts as
failing when it holds a <failure> or an <error> (pytest reports a module that cannot be
collected as an <error> case).
"""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from pathlib import Path

MAX_REPORT_BYTES = 64 * 1024 * 1024  # a report larger than this is not read


@dataclass(frozen=True)
class Report:
    failed: frozenset[str] | None  # None: no usable report
    note: str = ""  # why a report that exists could not be used


def read_report(path: Path) -> Report:
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return Report(None)
    except OSError as exc:
        return Report(None, f"cannot read the JUnit report {path}: {exc}")
    if size > MAX_REPORT_BYTES:
        return Report(
            None, f"the JUnit report {path} is {size} bytes; the limit is {MAX_REPORT_BYTES}"
        )
    failed: set[str] = set()
    # expat resolves no external entity and refuses entity expansion bombs.
    try:
        for _, element in ElementTree.iterparse(path, events=("end",)):
            if element.tag != "testcase":
                continue
            if any(child.tag in ("failure", "error") for child in element):
                failed.add(_test_id(element))
            element.clear()
    except (ElementTree.ParseError, OSError) as exc:
        return Report(None, f"the JUnit report {path} is unreadable: {exc}")
    return Report(frozenset(failed))


def _test_id(case: ElementTree.Element) -> str:
    name = case.get("name", "")
    classname = case.get("classname", "")
    return f"{classname}::{name}" if classname else name
