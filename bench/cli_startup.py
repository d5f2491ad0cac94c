"""CLI start-up: `plait --help` and `plait plan` against `python -c pass`.

    python -m bench.cli_startup [--runs 30] [--no-record]

Each contender is a fresh process of this environment's interpreter, timed from spawn to
exit, the three alternating run by run (so a slow spell of the shared machine hits all of
them). Target: `plait --help` within 3x `python -c pass` (the issue's bound): commands
import only what they use, so neither the help nor a dry run loads SQLAlchemy, psycopg,
rich or git. `plait plan` is shown for reference (it reads and batches a plan, with rich).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.machine import describe
from bench.results import append_section

TARGET = 3.0
PLAIT = str(Path(sys.executable).with_name("plait"))


def timed(argv: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--no-record", action="store_true", help="print only")
    args = parser.parse_args()
    print(describe(), flush=True)
    with tempfile.TemporaryDirectory(prefix="plait-cli-bench-") as tmp:
        plan = Path(tmp) / "plan.json"
        plan.write_text(json.dumps({"tasks": [{"id": "a", "run": "true"}]}))
        contenders = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "plait --help": [PLAIT, "--help"],
            "plait plan PLAN": [PLAIT, "plan", str(plan)],
        }
        for argv in contenders.values():
            timed(argv)  # warm the page cache once
        times: dict[str, list[float]] = {name: [] for name in contenders}
        names = list(contenders)
        for run in range(args.runs):
            for name in names[run % 3 :] + names[: run % 3]:
                times[name].append(timed(contenders[name]))
    base = statistics.median(times["python -c pass"])
    table = [
        "| command | median ms | range ms | x python -c pass | target |",
        "|---|---|---|---|---|",
    ]
    for name, values in times.items():
        ratio = statistics.median(values) / base
        target = ""
        if name == "plait --help":
            target = f"<= {TARGET:g}x ({'met' if ratio <= TARGET else 'MISSED'})"
        table.append(
            f"| `{name}` | {statistics.median(values) * 1000:.0f} | "
            f"{min(values) * 1000:.0f}-{max(values) * 1000:.0f} | {ratio:.2f}x | {target} |"
        )
    print("\n".join(table))
    if not args.no_record:
        append_section(
            "CLI start-up",
            f"python -m bench.cli_startup --runs {args.runs}",
            table,
            [
                f"{args.runs} runs of each, alternating. Every command loads only its own "
                "module under plait/cli; the store, git, rich and the HTTP app load when a "
                "command that needs them runs."
            ],
        )


if __name__ == "__main__":
    main()
