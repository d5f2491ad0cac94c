"""The `plait` console script. Thin: parse arguments, call the application, print, exit.

Exit status: 0 success, 1 the work did not fully succeed (or an integrity check failed),
2 invalid input or an unusable environment.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from plait.eventstore import SqlEventStore, StoreError, configured_url
from plait.eventstore import migrate as store_migrate
from plait.eventstore.engines import build_engine
from plait.eventstore.urls import display_url, normalise_url

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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except StoreError as exc:
        print(f"plait: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("plait: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
