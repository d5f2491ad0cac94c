"""The `plait` console script. Thin: parse arguments, call the application, print, exit.

Exit status: 0 success, 1 the work did not fully succeed (or an integrity check failed),
2 invalid input or an unusable environment (a plan, a database, or a test command that cannot
run or does not judge the merged commit), 130 interrupted, 141 the reader of our output
went away (`plait status | head -1`), as for any program killed by SIGPIPE.

Only argparse is loaded up front: each command's module (and the store, git, rich, ...
behind it) is imported when that command runs, so `plait --help` and `plait plan` stay
quick (`bench/cli_startup.py`).
"""

from __future__ import annotations

import argparse
import atexit
import gc
import importlib
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

Handler = Callable[[argparse.Namespace], int]

FRESH_HELP = (
    "give each task a new repository of its own, with a checkout of every file, instead "
    "of a pooled one (the default: a slot of the repository's pool, recycled with a "
    "checkout of the files that differ, much faster on large repositories; both are task "
    "repositories of their own, equally contained)"
)
REUSE_HELP = "the default now (pooled task repositories); accepted, and ignored, for old scripts"
WORKTREE_ROOT_HELP = (
    "where plait makes its worktrees (each repository in a directory of its own below it; "
    "default: the plan's worktree_root, else worktrees/ in your data directory). Never "
    "inside the repository"
)
DB_HELP = (
    "database URL (sqlite:///PATH or postgresql://USER@HOST:PORT/DB); "
    "default: $PLAIT_DATABASE_URL, else a SQLite file in your data directory"
)
PLANNER_PRESETS = "{planner_presets}"


class _HelpFormatter(argparse.HelpFormatter):
    """Fills in the agent presets' names from their table, plait.domain.agents, only when
    help is printed: importing the table for every command would cost each one."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = super()._get_help_string(action)
        if text is not None and PLANNER_PRESETS in text:
            from plait.domain.agents import preset_names

            text = text.replace(PLANNER_PRESETS, ", ".join(preset_names()))
        return text


def _add_db(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", metavar="URL", help=DB_HELP)


def _add_worktree_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--fresh-worktrees", action="store_true", help=FRESH_HELP)
    parser.add_argument("--reuse-worktrees", action="store_true", help=REUSE_HELP)
    parser.add_argument("--worktree-root", metavar="DIR", type=Path, help=WORKTREE_ROOT_HELP)


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    """What every command that drives a run takes: output, worktrees, the database."""
    parser.add_argument("--json", action="store_true", help="print one JSON event per line")
    _add_worktree_options(parser)
    _add_db(parser)


def _command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    handler: str,
    help: str,
) -> argparse.ArgumentParser:
    """A sub-command whose handler, `module:function` under plait.cli, loads when it runs."""
    parser = commands.add_parser(name, help=help, description=help, formatter_class=_HelpFormatter)
    parser.set_defaults(handler=handler)
    return parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="plait",
        description="Run a plan of coding tasks in parallel git worktrees; "
        "land only what passes the tests.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    plan = _command(
        commands, "plan", "planning:cmd_plan", "dry run: show a plan's batches and mode"
    )
    plan.add_argument("plan", metavar="PLAN", help="plan file (YAML or JSON)")
    plan.add_argument("--json", action="store_true", help="print one JSON object")

    run = _command(commands, "run", "running:cmd_run", "run a plan against a repository")
    run.add_argument("plan", metavar="PLAN", nargs="?", help="plan file (YAML or JSON)")
    run.add_argument(
        "--plan-from",
        metavar="COMMAND",
        help="Session 0: make the plan with this command instead of a file: an agent preset "
        f"({PLANNER_PRESETS}), a profile of your profiles file, or a shell command "
        "that writes $PLAIT_PLAN_OUTPUT or prints the plan",
    )
    run.add_argument("--spec", metavar="FILE", help="the specification the planner plans from")
    run.add_argument("--repo", default=".", help="the git repository (default: .)")
    run.add_argument(
        "--base",
        metavar="BRANCH",
        help="land on this branch (default: the plan's base, else the branch checked out)",
    )
    run.add_argument("--max-concurrency", type=_positive, default=None, metavar="N")
    _add_run_options(run)

    demo = _command(
        commands, "demo", "running:cmd_demo", "run a sample plan on a sample repository"
    )
    demo.add_argument(
        "--dir",
        type=Path,
        help="where to create it (a new or empty directory; default: demo/ in your data "
        "directory, replaced by the next demo)",
    )
    demo.add_argument("--max-concurrency", type=_positive, default=None, metavar="N")
    _add_run_options(demo)

    resume = _command(
        commands, "resume", "running:cmd_resume", "continue a stopped, failed or interrupted run"
    )
    resume.add_argument("run", metavar="RUN")
    _add_run_options(resume)

    land = _command(
        commands, "land", "running:cmd_land", "land a stopped, failed or kept run's tested work"
    )
    land.add_argument("run", metavar="RUN")
    _add_run_options(land)

    for name, verb in (
        ("retry", "run a task that did not land again"),
        ("skip", "go on without a task"),
    ):
        action = _command(commands, name, f"running:cmd_{name}", f"{verb}, then continue the run")
        action.add_argument("run", metavar="RUN")
        action.add_argument("task", metavar="TASK")
        _add_run_options(action)

    status = _command(
        commands, "status", "reading:cmd_status", "a run's status, or the recent runs"
    )
    status.add_argument("run", metavar="RUN", nargs="?")
    status.add_argument("--json", action="store_true")
    _add_db(status)

    history = _command(
        commands, "history", "reading:cmd_history", "a run's audit history: every event"
    )
    history.add_argument("run", metavar="RUN")
    history.add_argument("--until", metavar="T", help="a position or an ISO 8601 time")
    history.add_argument("--output", action="store_true", help="show TaskOutput events too")
    history.add_argument("--json", action="store_true", help="every event with its payload")
    _add_db(history)

    logs = _command(commands, "logs", "reading:cmd_logs", "a run's task output")
    logs.add_argument("run", metavar="RUN")
    logs.add_argument("task", metavar="TASK", nargs="?", help="one task (default: every task)")
    logs.add_argument("--attempt", type=_positive, metavar="N", help="one attempt (default: all)")
    logs.add_argument(
        "--follow", "-f", action="store_true", help="keep printing new output until the run ends"
    )
    _add_db(logs)

    clean = _command(
        commands,
        "clean",
        "maintenance:cmd_clean",
        "remove the worktrees and branches finished runs left behind",
    )
    clean.add_argument("--run", metavar="RUN", help="only this run")
    clean.add_argument(
        "--older-than",
        metavar="AGE",
        help="only runs that ended longer ago than AGE (30m, 12h, 7d, 2w)",
    )
    clean.add_argument(
        "--discard-unlanded",
        action="store_true",
        help="also remove work that did not land (failed tasks, culprits, unlanded results)",
    )
    clean.add_argument("--dry-run", action="store_true", help="say what would go; remove nothing")
    _add_db(clean)

    serve = _command(commands, "serve", "maintenance:cmd_serve", "the HTTP service and dashboard")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument(
        "--token",
        default=None,
        help="bearer token (default: $PLAIT_TOKEN "
        "or one generated and kept in your data directory)",
    )
    serve.add_argument(
        "--open-paths",
        default=None,
        metavar="PATHS",
        help="comma-separated paths anyone may GET without the token "
        "(default: /healthz,/metrics; '' for none)",
    )
    _add_worktree_options(serve)
    _add_db(serve)

    verify = _command(
        commands, "verify", "maintenance:cmd_verify", "check the event history's hash chain"
    )
    verify.add_argument(
        "--expect-head",
        metavar="POSITION:HASH",
        default=None,
        help="a chain head an earlier `plait verify` printed: fail if the history no longer "
        "holds it (events removed, wiped or rewritten since)",
    )
    _add_db(verify)

    db = commands.add_parser("db", help="database maintenance")
    db_commands = db.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    upgrade = _command(
        db_commands, "upgrade", "maintenance:cmd_db_upgrade", "create or upgrade the schema"
    )
    _add_db(upgrade)

    projections = commands.add_parser("projections", help="read model maintenance")
    projection_commands = projections.add_subparsers(
        dest="projections_command", required=True, metavar="ACTION"
    )
    rebuild = _command(
        projection_commands,
        "rebuild",
        "maintenance:cmd_projections_rebuild",
        "truncate and replay every projection",
    )
    _add_db(rebuild)
    return parser


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return value


def _handler(name: str) -> Handler:
    module, function = name.split(":")
    loaded: Handler = getattr(importlib.import_module(f"plait.cli.{module}"), function)
    return loaded


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command. As the console script (no `argv`), exit the process at once after
    it: see `_exit_now`."""
    code = _run(argv)
    if argv is None:
        _exit_now(code)
    return code


def _exit_now(code: int) -> None:
    """Exit without the interpreter's teardown (freeing every module and object costs a
    run about 0.2 s of CPU), once nothing is left to do: the command has returned, so its
    store is closed and every event is committed; the exit handlers run (logging's flush
    among them) and the output is flushed here. While a non-daemon thread is still alive,
    the ordinary exit (which waits for it) is kept."""
    import threading

    if any(
        t.is_alive() and not t.daemon
        for t in threading.enumerate()
        if t is not threading.main_thread()
    ):
        return
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BrokenPipeError:
            code = 141
        except (OSError, ValueError):
            pass
    os._exit(code)


def _run(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    try:
        # Importing the command's modules allocates much and frees next to nothing: no
        # collection walks it meanwhile (a tenth of `plait run`'s import time). What it
        # loaded lives as long as the process: the collector need not walk it again on
        # every full collection of a long run either.
        gc.disable()
        try:
            handler = _handler(args.handler)
        finally:
            gc.freeze()
            gc.enable()
        return handler(args)
    except BrokenPipeError:
        # The reader stopped reading (`| head`): say nothing, and keep Python's own flush at
        # exit from failing on the closed pipe too.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    except KeyboardInterrupt:
        print("plait: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        from plait.cli.errors import explain

        message, code = explain(exc)
        print(f"plait: {message}", file=sys.stderr)
        return code


if __name__ == "__main__":
    raise SystemExit(main())
