"""Append a section to bench/RESULTS.md."""

from __future__ import annotations

import datetime
import statistics
from pathlib import Path

from bench.machine import describe

RESULTS = Path(__file__).with_name("RESULTS.md")


def spread(values: list[float]) -> str:
    """Median with the range of the runs, e.g. "1234 (1100-1300)"."""
    return f"{statistics.median(values):,.0f} ({min(values):,.0f}-{max(values):,.0f})"


def append_section(title: str, command: str, table: list[str], notes: list[str]) -> str:
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"## {title} ({stamp})",
        "",
        f"Command: `{command}`  ",
        f"Machine: {describe()}",
        "",
        *table,
        "",
        *notes,
        "",
    ]
    text = "\n".join(lines)
    if not RESULTS.exists():
        RESULTS.write_text("# Benchmark results\n\nNewest sections last.\n\n", encoding="utf-8")
    with RESULTS.open("a", encoding="utf-8") as out:
        out.write(text + "\n")
    return text
