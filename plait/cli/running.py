"""The commands that drive a run in this process and show it until it ends: `run`, `demo`,
`resume`, `land`, `retry` and `skip`. Ctrl-C stops the run gracefully (resumable)."""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import platformdirs
from rich.console import Console
from rich.live import Live

from plait.cli.common import hint, open_store, settings
from plait.cli.errors import UsageError
from plait.cli.planning import read_plan
from plait.domain.events import RunCompleted, RunFailed, RunStopped
from plait.domain.plan.model import Plan
from plait.domain.run import RunState
from plait.domain.statuses import TASK_FAILURE, RunStatus
from plait.execution.git.cli import GitError
from plait.execution.runners import child_watch
from plait.execution.runners.user_config import user_profiles
from plait.execution.service import Plait
from plait.execution.settings import Settings
from plait.execution.worktrees.manager import WorktreeError
from plait.projections.codec import run_stream
from plait.terminal import landed_all, progress_view, summary_table

RUN_ENDS = frozenset({RunCompleted.TYPE, RunFailed.TYPE, RunStopped.TYPE})
Start = Callable[[Plait], Awaitable[tuple[str, str]]]  # -> (project id, run id)


def cmd_run(args: argparse.Namespace) -> int:
    if (args.plan is None) == (args.plan_from is None):
        raise UsageError("give a plan file or --plan-from COMMAND (one of the two)")
    if args.plan_from is not None:
        return child_watch.run(_plan_then_execute(args))
    plan = read_plan(args.plan)
    return child_watch.run(_execute(args, plan, args.repo, source=args.plan))


async def _plan_then_execute(args: argparse.Namespace) -> int:
    """Session 0: the planning command makes the plan; nothing runs unless it is valid."""
    from plait.execution.planning import PlanningFailed, plan_from_command  # only here

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


def default_demo_dir() -> Path:
    return Path(platformdirs.user_data_dir("plait", appauthor=False)) / "demo"


def cmd_demo(args: argparse.Namespace) -> int:
    from plait.cli.demo import create_demo  # only here: it imports PyYAML (writes YAML)

    directory: Path = args.dir or default_demo_dir()
    _make_room(directory, replace=args.dir is None)
    repo, plan_path = create_demo(directory)
    console = Console(stderr=args.json)
    console.print(f"[bold]plait demo[/bold]: a sample repository in {repo}")
    console.print(f"plan: {plan_path} (see it with `plait plan {plan_path}`)")
    if args.db is None:
        args.db = f"sqlite:///{directory / 'plait.db'}"
    # Everything the demo makes stays in its directory, so the next demo replaces all of it.
    if args.worktree_root is None:
        args.worktree_root = directory / "worktrees"
    plan = read_plan(str(plan_path))
    demo_settings = Settings(
        reuse_worktrees=not args.fresh_worktrees,
        worktree_root=args.worktree_root,
        log_root=directory / "logs",
    )
    code = child_watch.run(
        _execute(args, plan, str(repo), source=str(plan_path), given=demo_settings)
    )
    if not args.json:
        console.print(
            "\nThe demo stops on purpose: `rates` fails (the demo has no network), so with the "
            "plan's default `on_task_failure: stop` the run ends after its batch. What passed "
            "the tests is waiting on the run's result branch; the commands above land it or "
            "go on without `rates`. `fast-add` was left out too: it broke the tests, "
            "bisection named it, and its work is kept on its branch."
        )
    # The demo did what it shows, whichever way its run ended; 2 is a refused environment.
    return 0 if code in (0, 1) else code


def _make_room(directory: Path, *, replace: bool) -> None:
    from plait.cli.demo import DEMO_MARKER

    if not directory.exists() or not any(directory.iterdir()):
        return
    if replace and (directory / DEMO_MARKER).exists():
        shutil.rmtree(directory)  # the previous demo: nothing of the user's is in it
        return
    raise UsageError(f"{directory} is not empty: give the demo a new or empty directory")


def cmd_resume(args: argparse.Namespace) -> int:
    return child_watch.run(_continue(args, lambda service: _resumed(service, args.run)))


def cmd_land(args: argparse.Namespace) -> int:
    return child_watch.run(
        _continue(args, lambda service: _owned(service, args.run, service.land_run))
    )


def cmd_retry(args: argparse.Namespace) -> int:
    return child_watch.run(
        _continue(args, lambda s: _owned(s, args.run, lambda r: s.retry_task(r, args.task)))
    )


def cmd_skip(args: argparse.Namespace) -> int:
    return child_watch.run(
        _continue(args, lambda s: _owned(s, args.run, lambda r: s.skip_task(r, args.task)))
    )


async def _resumed(service: Plait, run_id: str) -> tuple[str, str]:
    project_id = await _project_of(service, run_id)
    return project_id, await service.resume_run(project_id, run_id)


async def _owned(
    service: Plait, run_id: str, action: Callable[[str], Awaitable[str]]
) -> tuple[str, str]:
    project_id = await _project_of(service, run_id)
    return project_id, await action(run_id)


async def _project_of(service: Plait, run_id: str) -> str:
    await service.wait_until_projected()
    project_id = service.project_of_run(run_id)
    if project_id is None:
        raise UsageError(f"no run {run_id!r} in {service.store}")
    return project_id


async def _execute(
    args: argparse.Namespace,
    plan: Plan,
    repo: str,
    *,
    source: str,
    given: Settings | None = None,
) -> int:
    async def start(service: Plait) -> tuple[str, str]:
        project_id = await service.register_project(repo)
        await service.submit_plan(project_id, plan, source=source)
        run_id = await service.start_run(
            project_id, max_concurrency=args.max_concurrency, base=getattr(args, "base", None)
        )
        return project_id, run_id

    return await _continue(args, start, given)


async def _continue(args: argparse.Namespace, start: Start, given: Settings | None = None) -> int:
    """Start (or continue) a run with `start`, show it until it ends, say what is next."""
    store = open_store(args)
    service = Plait(store, given or settings(args))
    await service.start()
    try:
        after = store.last_position()
        project_id, run_id = await start(service)
        return await _follow(args, service, project_id, run_id, after)
    finally:
        await service.close()
        store.close()


async def _follow(
    args: argparse.Namespace, service: Plait, project_id: str, run_id: str, after: int
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
        if args.json:
            printer = asyncio.create_task(_print_events(service, run_id, after))
            await service.wait_run(run_id)
            await asyncio.wait_for(printer, timeout=30)
        else:
            console = Console()
            # Piped (not a terminal) a live view shows only its last state, at its end: no
            # thread rebuilding it eight times a second meanwhile.
            with Live(
                console=console,
                refresh_per_second=8,
                auto_refresh=console.is_terminal,
                get_renderable=lambda: progress_view(state),
            ):
                await service.wait_run(run_id)
            if not console.is_terminal:
                # rich's Live ends its last line only on a terminal (Textualize/rich#4192):
                # piped into a log, the summary would start on the progress view's last line.
                console.line()
            console.print(summary_table(state))
            for line in outcome_lines(args, state):
                # soft_wrap: a command must reach the terminal whole, to be pasted as it is.
                console.print(line, highlight=False, markup=False, soft_wrap=True)
        if state.status == RunStatus.FAILED and state.baseline_problem:
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
        if stored.type in RUN_ENDS:
            return


def outcome_lines(args: argparse.Namespace, state: RunState) -> list[str]:
    """How the run ended, and every command that takes it further, as it can be pasted."""
    run_id = state.run_id
    status = state.status
    lines = [state.outcome()]
    if state.landable:
        lines.append(f"{state.landable_note()} Land it with: {hint(args, 'land', run_id)}")
    if status in (RunStatus.STOPPED, RunStatus.FAILED):
        failed = [t.task_id for t in state.tasks.values() if t.status in TASK_FAILURE]
        for task_id in failed:
            lines.append(f"run {task_id} again with:   {hint(args, 'retry', run_id, task_id)}")
            lines.append(f"go on without {task_id}: {hint(args, 'skip', run_id, task_id)}")
        lines.append(f"resume the run with: {hint(args, 'resume', run_id)}")
    return lines
