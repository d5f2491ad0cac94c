"""`plait plan`: a dry run that reads a plan and shows its batches. Nothing else is loaded."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from plait.domain.errors import PlanError
from plait.domain.plan.batching import plan_batches, select_mode
from plait.domain.plan.expected import Expected, expected
from plait.domain.plan.model import Plan, Schedule
from plait.domain.plan.parsing import parse_plan
from plait.execution.runners.user_config import user_profiles


def read_plan(path: str) -> Plan:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PlanError([f"cannot read plan file {path!r}: {exc}"]) from None
    return parse_plan(text, source=path, user_profiles=user_profiles())


def cmd_plan(args: argparse.Namespace) -> int:
    plan = read_plan(args.plan)
    batches = plan_batches(plan)
    decision = select_mode(batches, plan.max_concurrency)
    paths = expected(plan)
    if args.json:
        described = [
            {**b.to_dict(), "at_once": _at_once(plan, len(b.task_ids), b.can_parallel)}
            for b in batches
        ]
        print(
            json.dumps(
                {
                    "mode": decision.mode,
                    "reason": decision.reason,
                    "schedule": str(plan.schedule),
                    "batches": described,
                    "expected": paths.to_dict(),
                }
            )
        )
        return 0
    from rich.console import Console
    from rich.table import Table

    console = Console()
    ready = plan.schedule is Schedule.READY
    # A ready run has no batches: the same groups are its dependency levels, for reading.
    groups = "dependency levels" if ready else "batches"
    table = Table(title=f"{args.plan}: {len(plan.tasks)} tasks in {len(batches)} {groups}")
    table.add_column("level" if ready else "batch", justify="right")
    table.add_column("tasks")
    table.add_column("at once", justify="right")
    for batch in batches:
        at_once = _at_once(plan, len(batch.task_ids), batch.can_parallel)
        table.add_row(str(batch.batch_id), ", ".join(batch.task_ids), str(at_once))
    console.print(table)
    console.print(f"mode: [bold]{decision.mode}[/bold] ({decision.reason})")
    console.print(f"schedule: [bold]{plan.schedule}[/bold]")
    for line in _expected_lines(paths):
        console.print(line, highlight=False)
    console.print(f"on_task_failure: {plan.on_task_failure}")
    return 0


def _expected_lines(paths: Expected) -> list[str]:
    """Both schedules' expected length, and the critical path no schedule can beat."""
    unit = "s" if paths.unit == "s" else " tasks"

    def show(value: float) -> str:
        return f"{value:g}{unit}"

    lines = [
        f"expected, batch schedule: {show(paths.batch)} (each batch waits for the one before it)",
        f"expected, ready schedule: {show(paths.ready)}"
        " (a task starts once its dependencies landed)",
        f"critical path: {' -> '.join(paths.critical_path)} ({show(paths.critical_length)})",
    ]
    if paths.unestimated:
        named = ", ".join(paths.unestimated[:5])
        more = f" and {len(paths.unestimated) - 5} more" if len(paths.unestimated) > 5 else ""
        lines.append(
            f"  counted in tasks: no 'estimate' on {named}{more}; merges and test runs not counted"
        )
    else:
        lines.append("  from the tasks' 'estimate' (seconds); merges and test runs not counted")
    return lines


def _at_once(plan: Plan, tasks: int, can_parallel: bool) -> int:
    """How many of a batch's tasks run side by side: max_concurrency holds a big one back."""
    return min(tasks, plan.max_concurrency) if can_parallel else 1
