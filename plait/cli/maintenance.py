"""The commands that look after the store and the repositories: `db upgrade`, `verify`,
`projections rebuild`, `clean` and `serve`."""

from __future__ import annotations

import argparse
import re
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from plait.cli.common import hint, open_store, read_models, settings
from plait.cli.errors import UsageError
from plait.domain.times import parse_time
from plait.eventstore import StoreUnavailable, configured_url
from plait.eventstore import migrate as store_migrate
from plait.eventstore.engines import build_engine
from plait.eventstore.urls import display_url, normalise_url
from plait.execution.runners import child_watch
from plait.projections import Projector, all_projections
from plait.projections.audit import verify_lifecycles

if TYPE_CHECKING:
    from plait.eventstore import ChainHead, SqlEventStore

AGE = re.compile(r"^(\d+)\s*(m|h|d|w)$")
UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from sqlalchemy.exc import DBAPIError

    url = normalise_url(configured_url(args.db))
    engine = build_engine(url)
    try:
        before, after = store_migrate.upgrade(engine)
    except DBAPIError as exc:  # unreachable, refused, not a database: one line, no traceback
        first = (str(exc.orig).strip().splitlines() or ["unknown error"])[0]
        raise StoreUnavailable(f"database {display_url(url)} is unavailable: {first}") from None
    finally:
        engine.dispose()
    state = "already at" if before == after else f"upgraded from {before or 'empty'} to"
    print(f"{display_url(url)}: {state} {after}")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    import sys

    from plait.eventstore import ChainHead
    from plait.eventstore.project_runs import check_project_runs

    try:
        expected = ChainHead.parse(args.expect_head) if args.expect_head else None
    except ValueError as exc:
        raise UsageError(f"--expect-head: {exc}") from None
    store = open_store(args)
    try:
        anchors = child_watch.run(_repository_anchors(store))
        report = store.verify(expect_head=expected, anchors=anchors)
        runs = check_project_runs(store) if report.ok else None
        replay = verify_lifecycles(store) if runs is not None and runs.ok else None
    finally:
        store.close()
    if not report.ok:
        print(
            f"TAMPERED: event at position {report.first_bad_position}: {report.problem} "
            f"({report.checked} events before it are intact)",
            file=sys.stderr,
        )
        return 1
    assert runs is not None
    for problem in (runs, replay):
        if problem is not None and not problem.ok:
            print(
                f"INVALID HISTORY: event at position {problem.first_bad_position}: "
                f"{problem.problem}",
                file=sys.stderr,
            )
            return 1
    assert replay is not None
    if report.head is not None:
        print(
            f"head: {report.head} (keep it: `plait verify --expect-head {report.head}` "
            "proves later that this history was not cut short or rewritten)"
        )
    events = f"{report.checked} event{'' if report.checked == 1 else 's'}"
    replays = "1 run replays" if replay.runs == 1 else f"{replay.runs} runs replay"
    print(f"ok: {events}, hash chain intact, {replays} cleanly")
    return 0


async def _repository_anchors(store: SqlEventStore) -> list[tuple[str, ChainHead]]:
    """The chain heads the landings kept in the projects' repositories (git/anchor.py)."""
    from pathlib import Path

    from plait.eventstore.anchor import head_ref_for
    from plait.eventstore.project_runs import registered_repositories
    from plait.execution.git.anchor import anchored_chain
    from plait.execution.git.cli import Git, GitError

    ref = head_ref_for(store.url)
    found = []
    for repo in registered_repositories(store):
        if not Path(repo, ".git").exists():
            continue  # moved or deleted since: nothing to check against
        try:
            head = await anchored_chain(Git(Path(repo)), ref)
        except (GitError, OSError):
            continue
        if head is not None:
            found.append((f"the ref {ref} in {repo}", head))
    return found


def cmd_projections_rebuild(args: argparse.Namespace) -> int:
    store = open_store(args)
    try:
        position = Projector(store, all_projections()).rebuild()
    finally:
        store.close()
    print(f"rebuilt {len(all_projections())} projections up to position {position}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from plait.http.serve import serve
    from plait.http.state import OPEN_PATHS

    opened = OPEN_PATHS
    if args.open_paths is not None:
        opened = tuple(p.strip() for p in args.open_paths.split(",") if p.strip())
        if bad := [p for p in opened if not p.startswith("/")]:
            raise UsageError(f"--open-paths: {bad[0]!r} is not a path (it starts with '/')")
    return serve(
        args.host,
        args.port,
        args.db,
        args.token,
        settings=settings(args, serving=True),
        open_paths=opened,
    )


def older_than(text: str) -> timedelta:
    found = AGE.match(text.strip())
    if found is None:
        raise UsageError(f"--older-than {text!r}: give an age such as 30m, 12h, 7d or 2w")
    return timedelta(**{UNITS[found.group(2)]: int(found.group(1))})


def cmd_clean(args: argparse.Namespace) -> int:
    from plait.execution.worktrees.cleanup import clean_runs

    age = older_than(args.older_than) if args.older_than else None
    store = open_store(args)
    try:
        models = read_models(store)
        if args.run:
            state = models.run_state(args.run)
            if state is None:
                raise UsageError(f"no run {args.run!r} in {store}")
            states = [state]
        else:
            states = [
                state
                for summary in models.runs(limit=1_000_000)
                if (state := models.run_state(summary["run_id"])) is not None
            ]
    finally:
        store.close()
    if age is not None:
        cutoff = datetime.now(UTC) - age
        states = [s for s in states if (ended := parse_time(s.ended_at)) and ended < cutoff]
    report = child_watch.run(
        clean_runs(states, discard_unlanded=args.discard_unlanded, dry_run=args.dry_run)
    )
    verb = "would remove" if args.dry_run else "removed"
    for line in report.removed:
        print(f"{verb} {line}")
    for line in report.kept:
        print(f"kept {line}")
    for line in report.skipped:
        print(f"skipped {line}")
    if report.kept:
        again = ["clean", "--discard-unlanded"] + (["--run", args.run] if args.run else [])
        print(
            f"{len(report.kept)} kept: they hold work that did not land. "
            f"To remove them too: {hint(args, *again)}"
        )
    if not (report.removed or report.kept or report.skipped):
        print("nothing to clean")
    return 0
