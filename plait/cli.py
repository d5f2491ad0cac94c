"""The `plait` console script. Thin: parse arguments, call the application, print, exit.

Exit status: 0 success, 1 the work did not fully succeed (or an integrity check failed),
2 invalid input or an unusable environment.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from rich.console import Console
from rich.table import Table

from plait.domain.batching import plan_batches, select_mode
from plait.domain.errors import PlanError
from plait.domain.plan import parse_plan
from plait.domain.plan_model import Plan
from plait.eventstore import SqlEventStore, StoreError, configured_url
from plait.eventstore import migrate as store_migrate
from plait.eventstore.engines import build_engine
from plait.eventstore.urls import display_url, normalise_url
from plait.projections import Projector, all_projections

Handler = Callable[[argparse.Namespace], int]


def _add_db(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--db",
        metavar="URL",
        help="database URL (sqlite:///PATH or postgresql://USER@HOST:PORT/DB); "
        "default: $PLAIT_DATABASE_URL, else a SQLite file in your data directory",
    )


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    url = normalise_url(configured_url(args.db))
    engine = build_engine(url)
    try:
        before, after = store_migrate.upgrade(engine)
    finally:
        engine.dispose()
    state = "already at" if before == after else f"upgraded from {before or 'empty'} to"
    print(f"{display_url(url)}: {state} {after}")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    store = SqlEventStore(configured_url(args.db))
    try:
        report = store.verify()
    finally:
        store.close()
    if report.ok:
        print(f"ok: {report.checked} events, hash chain intact")
        return 0
    print(
        f"TAMPERED: event at position {report.first_bad_position}: {report.problem} "
        f"({report.checked} events before it are intact)",
        file=sys.stderr,
    )
    return 1


def _read_plan(path: str) -> Plan:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PlanError([f"cannot read plan file {path!r}: {exc}"]) from None
    return parse_plan(text, source=path)


def cmd_plan(args: argparse.Namespace) -> int:
    plan = _read_plan(args.plan)
    batches = plan_batches(plan)
    decision = select_mode(batches)
    if args.json:
        print(
            json.dumps(
                {
                    "mode": decision.mode,
                    "reason": decision.reason,
                    "batches": [
                        {
                            "batch_id": b.batch_id,
                            "task_ids": list(b.task_ids),
                            "can_parallel": b.can_parallel,
                        }
                        for b in batches
                    ],
                }
            )
        )
        return 0
    console = Console()
    table = Table(title=f"{args.plan}: {len(plan.tasks)} tasks in {len(batches)} batches")
    table.add_column("batch", justify="right")
    table.add_column("tasks")
    table.add_column("parallel")
    for batch in batches:
        table.add_row(
            str(batch.batch_id), ", ".join(batch.task_ids), "yes" if batch.can_parallel else "no"
        )
    console.print(table)
    console.print(f"mode: [bold]{decision.mode}[/bold] ({decision.reason})")
    return 0


def cmd_projections_rebuild(args: argparse.Namespace) -> int:
    store = SqlEventStore(configured_url(args.db))
    try:
        position = Projector(store, all_projections()).rebuild()
    finally:
        store.close()
    print(f"rebuilt {len(all_projections())} projections up to position {position}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="plait",
        description="Run a plan of coding tasks in parallel git worktrees; "
        "land only what passes the tests.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    db = commands.add_parser("db", help="database maintenance")
    db_commands = db.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    upgrade = db_commands.add_parser("upgrade", help="create or upgrade the schema (idempotent)")
    _add_db(upgrade)
    upgrade.set_defaults(handler=cmd_db_upgrade)

    verify = commands.add_parser("verify", help="check the event history's hash chain")
    _add_db(verify)
    verify.set_defaults(handler=cmd_verify)

    plan = commands.add_parser("plan", help="dry run: show a plan's batches and mode")
    plan.add_argument("plan", metavar="PLAN", help="plan file (YAML or JSON)")
    plan.add_argument("--json", action="store_true", help="print one JSON object")
    plan.set_defaults(handler=cmd_plan)

    projections = commands.add_parser("projections", help="read model maintenance")
    projection_commands = projections.add_subparsers(
        dest="projections_command", required=True, metavar="ACTION"
    )
    rebuild = projection_commands.add_parser("rebuild", help="truncate and replay every projection")
    _add_db(rebuild)
    rebuild.set_defaults(handler=cmd_projections_rebuild)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except StoreError as exc:
        print(f"plait: {exc}", file=sys.stderr)
        return 2
    except PlanError as exc:
        print(f"plait: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("plait: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
