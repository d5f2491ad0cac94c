"""The `plait` console script. Thin: parse arguments, call the application, print, exit.

Exit status: 0 success, 1 the work did not fully succeed (or an integrity check failed),
2 invalid input or an unusable environment (a plan, a database, or a test command that cannot
run or does not judge the merged commit).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import tempfile
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.table import Table
from sqlalchemy.exc import DBAPIError

from plait.domain.agents import preset_names
from plait.domain.batching import plan_batches, select_mode
from plait.domain.errors import PlanError
from plait.domain.plan import parse_plan
from plait.domain.plan_model import Plan
from plait.domain.run import RunState
from plait.eventstore import SqlEventStore, StoreError, StoreUnavailable, configured_url
from plait.eventstore import migrate as store_migrate
from plait.eventstore.engines import build_engine
from plait.eventstore.urls import display_url, normalise_url
from plait.execution.demo import create_demo
from plait.execution.git import GitError
from plait.execution.planning import PlanningFailed, plan_from_command
from plait.execution.service import Plait, ServiceError
from plait.execution.settings import Settings
from plait.execution.user_config import user_profiles
from plait.execution.worktrees import WorktreeError
from plait.projections import Projector, ReadModels, all_projections
from plait.projections.audit import verify_lifecycles
from plait.projections.codec import run_stream
from plait.terminal import badge, landed_all, progress_view, summary_table

Handler = Callable[[argparse.Namespace], int]


REUSE_HELP = (
    "reuse task worktrees from a pool (a checkout of the changed files instead of a full "
    "`git worktree add` per task: much faster on large repositories)"
)


WORKTREE_ROOT_HELP = (
    "where plait makes its worktrees (each repository in a directory of its own below it; "
    "default: the plan's worktree_root, else worktrees/ in your data directory). Never "
    "inside the repository"
)


def _add_worktree_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--reuse-worktrees", action="store_true", help=REUSE_HELP)
    parser.add_argument("--worktree-root", metavar="DIR", type=Path, help=WORKTREE_ROOT_HELP)


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    """What every command that drives a run takes: output, worktrees, the database."""
    parser.add_argument("--json", action="store_true", help="print one JSON event per line")
    _add_worktree_options(parser)
    _add_db(parser)


def _settings(args: argparse.Namespace) -> Settings:
    return Settings(reuse_worktrees=args.reuse_worktrees, worktree_root=args.worktree_root)


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
    except DBAPIError as exc:  # unreachable, refused, not a database: one line, no traceback
        first = (str(exc.orig).strip().splitlines() or ["unknown error"])[0]
        raise StoreUnavailable(f"database {display_url(url)} is unavailable: {first}") from None
    finally:
        engine.dispose()
    state = "already at" if before == after else f"upgraded from {before or 'empty'} to"
    print(f"{display_url(url)}: {state} {after}")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    store = SqlEventStore(configured_url(args.db))
    try:
        report = store.verify()
        replay = verify_lifecycles(store) if report.ok else None
    finally:
        store.close()
    if not report.ok:
        print(
            f"TAMPERED: event at position {report.first_bad_position}: {report.problem} "
            f"({report.checked} events before it are intact)",
            file=sys.stderr,
        )
        return 1
    assert replay is not None
    if not replay.ok:
        print(
            f"INVALID HISTORY: event at position {replay.first_bad_position}: {replay.problem}",
            file=sys.stderr,
        )
        return 1
    events = f"{report.checked} event{'' if report.checked == 1 else 's'}"
    runs = "1 run replays" if replay.runs == 1 else f"{replay.runs} runs replay"
    print(f"ok: {events}, hash chain intact, {runs} cleanly")
    return 0


def _read_plan(path: str) -> Plan:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PlanError([f"cannot read plan file {path!r}: {exc}"]) from None
    return parse_plan(text, source=path, user_profiles=user_profiles())


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


def _open_store(db: str | None) -> SqlEventStore:
    return SqlEventStore(configured_url(db))


def cmd_run(args: argparse.Namespace) -> int:
    if (args.plan is None) == (args.plan_from is None):
        raise PlanError(["give a plan file or --plan-from COMMAND (one of the two)"])
    if args.plan_from is not None:
        return asyncio.run(_plan_then_execute(args))
    plan = _read_plan(args.plan)
    return asyncio.run(_execute(args, plan, args.repo, source=args.plan))


async def _plan_then_execute(args: argparse.Namespace) -> int:
    """Session 0: the planning command makes the plan; nothing runs unless it is valid."""
    console = Console(stderr=True)
    console.print(f"planning with {args.plan_from!r} ...")
    try:
        made = await plan_from_command(
            Path(args.repo),
            args.plan_from,
            Path(args.spec) if args.spec else None,
            worktree_root=args.worktree_root,
            user_profiles=user_profiles(),
        )
    except (PlanningFailed, WorktreeError) as exc:
        print(f"plait: {exc}", file=sys.stderr)
        return 2
    except GitError as exc:
        print(f"plait: {args.repo}: {exc}", file=sys.stderr)
        return 2
    console.print(f"plan accepted: {len(made.plan.tasks)} tasks")
    return await _execute(args, made.plan, args.repo, source=made.source)


def cmd_demo(args: argparse.Namespace) -> int:
    directory = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="plait-demo-"))
    repo, plan_path = create_demo(directory)
    console = Console(stderr=args.json)
    console.print(f"[bold]plait demo[/bold]: a sample repository in {repo}")
    console.print(f"plan: {plan_path} (8 tasks, 3 batches; see it with `plait plan {plan_path}`)")
    if args.db is None:
        args.db = f"sqlite:///{directory / 'plait.db'}"
    plan = _read_plan(str(plan_path))
    return asyncio.run(_execute(args, plan, str(repo), source=str(plan_path), demo=True))


async def _execute(
    args: argparse.Namespace, plan: Plan, repo: str, *, source: str, demo: bool = False
) -> int:
    store = _open_store(args.db)
    service = Plait(store, _settings(args))
    await service.start()
    try:
        project_id = await service.find_project(repo) or await service.register_project(repo)
        await service.submit_plan(project_id, plan, source=source)
        after = store.last_position()
        run_id = await service.start_run(project_id, max_concurrency=args.max_concurrency)
        code = await _follow(service, project_id, run_id, after, as_json=args.json)
        state = service.run_state(run_id)
        if demo and state is not None and state.status == "completed":
            # Leaving the culprit out is what the demo is for: that is a success here.
            if not args.json:
                Console().print(
                    "The demo left `fast-add` out on purpose: it broke the tests, bisection "
                    "named it, and its work is kept on its branch. Everything else landed."
                )
            return 0
        return code
    finally:
        await service.close()
        store.close()


async def _follow(
    service: Plait, project_id: str, run_id: str, after: int, *, as_json: bool
) -> int:
    """Show a run's progress until it ends; Ctrl-C stops it gracefully (twice: at once)."""
    loop = asyncio.get_running_loop()
    interrupts = 0
    stopping: set[asyncio.Task[str]] = set()

    def on_interrupt() -> None:
        nonlocal interrupts
        interrupts += 1
        if interrupts == 1:
            print("\nplait: stopping (Ctrl-C again to abort)...", file=sys.stderr)
            stopper = loop.create_task(
                service.stop_run(project_id, "interrupted from the terminal")
            )
            stopping.add(stopper)
            stopper.add_done_callback(stopping.discard)
        else:
            for task in asyncio.all_tasks(loop):
                task.cancel()

    loop.add_signal_handler(signal.SIGINT, on_interrupt)
    try:
        state = service.run_state(run_id)
        assert state is not None
        if as_json:
            printer = asyncio.create_task(_print_events(service, run_id, after))
            result = await service.wait_run(run_id)
            await asyncio.wait_for(printer, timeout=30)
        else:
            console = Console()
            with Live(
                console=console, refresh_per_second=8, get_renderable=lambda: progress_view(state)
            ):
                result = await service.wait_run(run_id)
            if not console.is_terminal:
                # rich's Live ends its last line only on a terminal (Textualize/rich#4192):
                # piped into a log, the summary would start on the progress view's last line.
                console.line()
            console.print(summary_table(state))
            _print_outcome(console, result.status, state)
        if state.status == "failed" and state.baseline_problem:
            return 2  # the plan or the environment was refused before any task ran
        return 0 if landed_all(state) else 1
    finally:
        loop.remove_signal_handler(signal.SIGINT)


async def _print_events(service: Plait, run_id: str, after: int) -> None:
    stream = run_stream(run_id)
    async for stored in service.store.subscribe(after):
        if stored.stream_id != stream:
            continue
        line = {
            "position": stored.position,
            "type": stored.type,
            "recorded_at": stored.recorded_at.isoformat(),
            **stored.data,
        }
        print(json.dumps(line), flush=True)
        if stored.type in ("RunCompleted", "RunFailed", "RunStopped"):
            return


def _print_outcome(console: Console, status: str, state: RunState) -> None:
    if state.status == "completed":
        console.print(
            f"[bold green]landed[/bold green] {(state.landed_commit or '')[:12]} "
            f"on {state.landed_on}"
        )
        if state.land_command:
            console.print(f"to land it yourself: [bold]{escape(state.land_command)}[/bold]")
    elif state.status == "stopped":
        console.print(f"[yellow]stopped[/yellow]; resume with: plait resume {state.run_id}")
    else:
        # Escaped: an error quotes plans and output, whose [brackets] are not rich markup.
        console.print(f"[bold red]{status}[/bold red]: {escape(state.error or '')}")


def cmd_resume(args: argparse.Namespace) -> int:
    return asyncio.run(_resume(args))


async def _resume(args: argparse.Namespace) -> int:
    store = _open_store(args.db)
    service = Plait(store, _settings(args))
    await service.start()
    try:
        await service.wait_until_projected()
        status = service.read.run_status(args.run)
        if status is None:
            print(f"plait: no run {args.run!r} in {store}", file=sys.stderr)
            return 2
        after = store.last_position()
        project_id = str(status["project_id"])
        run_id = await service.resume_run(project_id, args.run)
        return await _follow(service, project_id, run_id, after, as_json=args.json)
    finally:
        await service.close()
        store.close()


def cmd_status(args: argparse.Namespace) -> int:
    store = _open_store(args.db)
    try:
        Projector(store, all_projections()).catch_up()
        models = ReadModels(store)
        if args.run:
            view = models.run_status(args.run)
            if view is None:
                print(f"plait: no run {args.run!r}", file=sys.stderr)
                return 2
            print(json.dumps(view, indent=2) if args.json else _status_text(view))
            return 0
        runs = models.runs()
        if args.json:
            print(json.dumps(runs, indent=2))
            return 0
        table = Table(title="recent runs")
        for column in ("run", "project", "status"):
            table.add_column(column)
        for run in runs:
            table.add_row(run["run_id"], run["project_id"], badge(run["status"]))
        Console().print(table)
        return 0
    finally:
        store.close()


def _status_text(view: dict[str, object]) -> str:
    lines = [
        f"run {view['run_id']}: {view['status']} ({view['execution_mode']} mode)",
        f"batches: {view['completed_batches']}/{view['batches_total']} completed",
    ]
    for task in view["tasks"]:  # type: ignore[attr-defined]
        line = f"  {task['task_id']:<20} {task['status']:<11} attempt {task['attempt']}"
        if task.get("agent"):
            line += (
                f"  {task['agent']} {task.get('model') or ''}  tokens"
                f" {task['total_tokens_in']:,}/{task['total_tokens_out']:,}"
                f"  ${task['total_cost_usd']:.4f}"
            )
        lines.append(line)
    if any(task.get("agent") for task in view["tasks"]):  # type: ignore[attr-defined]
        lines.append(
            f"agents: tokens {view['tokens_in']:,} in, {view['tokens_out']:,} out;"
            f" cost ${view['cost_usd']:.4f}"
        )
    return "\n".join(lines)


def cmd_history(args: argparse.Namespace) -> int:
    store = _open_store(args.db)
    try:
        Projector(store, all_projections()).catch_up()
        models = ReadModels(store)
        until = _until_position(models, args.until)
        rows = models.timeline(run_id=args.run, until=until, limit=100_000)
        if not rows:
            print(f"plait: no history for run {args.run!r}", file=sys.stderr)
            return 2
        state = models.run_state_at(args.run, until)
        if args.json:
            print(json.dumps({"timeline": rows, "status_at": state}, indent=2))
            return 0
        for row in rows:
            print(f"{row['position']:>8}  {row['recorded_at']}  {row['type']}")
        if state is not None:
            print(_status_text(state))
        return 0
    finally:
        store.close()


def _until_position(models: ReadModels, until: str | None) -> int | None:
    if until is None:
        return None
    if until.isdigit():
        return int(until)
    try:
        moment = datetime.fromisoformat(until)
    except ValueError:
        raise PlanError([f"--until {until!r}: give a position or an ISO 8601 time"]) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return models.position_at(moment)


def cmd_serve(args: argparse.Namespace) -> int:
    from plait.http.serve import serve

    return serve(args.host, args.port, args.db, args.token, settings=_settings(args))


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

    run = commands.add_parser("run", help="run a plan against a repository")
    run.add_argument("plan", metavar="PLAN", nargs="?", help="plan file (YAML or JSON)")
    run.add_argument(
        "--plan-from",
        metavar="COMMAND",
        help="Session 0: make the plan with this command instead of a file: an agent preset "
        f"({', '.join(preset_names())}), a profile of your profiles file, or a shell command "
        "that writes $PLAIT_PLAN_OUTPUT or prints the plan",
    )
    run.add_argument("--spec", metavar="FILE", help="the specification the planner plans from")
    run.add_argument("--repo", default=".", help="the git repository (default: .)")
    run.add_argument("--max-concurrency", type=_positive, default=None, metavar="N")
    _add_run_options(run)
    run.set_defaults(handler=cmd_run)

    demo = commands.add_parser("demo", help="run a sample plan on a sample repository")
    demo.add_argument("--dir", help="where to create it (default: a new temporary directory)")
    demo.add_argument("--max-concurrency", type=_positive, default=None, metavar="N")
    _add_run_options(demo)
    demo.set_defaults(handler=cmd_demo)

    resume = commands.add_parser("resume", help="continue a stopped or interrupted run")
    resume.add_argument("run", metavar="RUN")
    _add_run_options(resume)
    resume.set_defaults(handler=cmd_resume)

    status = commands.add_parser("status", help="a run's status, or the recent runs")
    status.add_argument("run", metavar="RUN", nargs="?")
    status.add_argument("--json", action="store_true")
    _add_db(status)
    status.set_defaults(handler=cmd_status)

    history = commands.add_parser("history", help="a run's audit history")
    history.add_argument("run", metavar="RUN")
    history.add_argument("--until", metavar="T", help="a position or an ISO 8601 time")
    history.add_argument("--json", action="store_true")
    _add_db(history)
    history.set_defaults(handler=cmd_history)

    serve = commands.add_parser("serve", help="the HTTP service and dashboard")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument(
        "--token",
        default=None,
        help="bearer token (default: $PLAIT_TOKEN "
        "or one generated and kept in your data directory)",
    )
    _add_worktree_options(serve)
    _add_db(serve)
    serve.set_defaults(handler=cmd_serve)

    projections = commands.add_parser("projections", help="read model maintenance")
    projection_commands = projections.add_subparsers(
        dest="projections_command", required=True, metavar="ACTION"
    )
    rebuild = projection_commands.add_parser("rebuild", help="truncate and replay every projection")
    _add_db(rebuild)
    rebuild.set_defaults(handler=cmd_projections_rebuild)
    return parser


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return value


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
    except ServiceError as exc:
        print(f"plait: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("plait: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
