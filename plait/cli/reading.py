"""The commands that read what happened: `status`, `history` and `logs`."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from plait.cli.common import hint, open_store, read_models
from plait.cli.errors import UsageError
from plait.domain.events import TaskOutput
from plait.domain.run import RunState, task_note
from plait.domain.statuses import ENDED_RUN
from plait.domain.times import duration_text, parse_time
from plait.eventstore import EventStore, StoredEvent
from plait.projections import ReadModels
from plait.projections.codec import decode, run_stream
from plait.projections.logs import attempt_logs, task_output


def cmd_status(args: argparse.Namespace) -> int:
    store = open_store(args)
    try:
        models = read_models(store)
        if args.run:
            view = models.run_status(args.run)
            if view is None:
                raise UsageError(f"no run {args.run!r} in {store}")
            print(json.dumps(view, indent=2) if args.json else status_text(args, view))
            return 0
        runs = models.runs()
        if args.json:
            print(json.dumps(runs, indent=2))
            return 0
        _runs_table(runs)
        return 0
    finally:
        store.close()


def _runs_table(runs: list[dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    from plait.terminal import badge

    table = Table(title="recent runs")
    for column in ("run", "project", "status", "started", "duration", "landed"):
        table.add_column(column)
    for run in runs:
        table.add_row(
            run["run_id"],
            run["repo_path"] or run["project_id"],
            badge(run["status"]),
            local_time(run["started_at"]),
            duration_text(run["duration"]),
            f"{run['tasks_landed']}/{run['tasks_total']}",
        )
    Console().print(table)


def local_time(recorded: str | None) -> str:
    moment = parse_time(recorded)
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S") if moment else ""


def status_text(args: argparse.Namespace, view: dict[str, Any]) -> str:
    state = RunState.from_json_dict(view)
    lines = [
        f"run {state.run_id}: {state.status} ({view['execution_mode']} mode, "
        f"on_task_failure: {state.on_task_failure})",
        f"project: {state.repo_path}   "
        f"base: {state.base_branch} @ {(state.base_commit or '')[:12]}",
        f"started: {local_time(state.started_at or state.created_at)}"
        + (f"   ended: {local_time(state.ended_at)}" if state.ended_at else "")
        + (f"   duration: {duration_text(view['duration'])}" if view["duration"] else ""),
        f"batches: {state.completed_batches}/{state.batches_total} landed",
    ]
    if state.error:
        lines.append(f"error: {state.error}")
    width = max([len(t) for t in state.tasks] + [4])
    lines.append(f"  {'task':<{width}}  {'status':<10} {'attempt':>7} {'duration':>9}  note")
    for task in state.tasks.values():
        took = duration_text(task.duration)
        line = f"  {task.task_id:<{width}}  {task.status:<10} {task.attempt:>7} {took:>9}  "
        if task.agent:
            line += (
                f"{task.agent} {task.model or ''}  tokens"
                f" {task.total_tokens_in:,}/{task.total_tokens_out:,}"
                f"  ${task.total_cost_usd:.4f}  "
            )
        lines.append(line + task_note(state, task))
    if any(task.agent for task in state.tasks.values()):
        lines.append(
            f"agents: tokens {view['tokens_in']:,} in, {view['tokens_out']:,} out;"
            f" cost ${view['cost_usd']:.4f}"
        )
    lines.append(state.outcome())
    if state.landable:
        lines.append(f"{state.landable_note()} Land it with: {hint(args, 'land', state.run_id)}")
    return "\n".join(lines)


def cmd_history(args: argparse.Namespace) -> int:
    store = open_store(args)
    try:
        models = read_models(store)
        until = _until_position(models, args.until)
        rows = models.timeline(run_id=args.run, until=until, limit=1_000_000)
        if not rows:
            raise UsageError(f"no history for run {args.run!r} in {store}")
        state = models.run_state_at(args.run, until)
        if args.json:
            print(json.dumps({"timeline": rows, "status_at": state}, indent=2))
            return 0
        shown = [row for row in rows if args.output or row["type"] != TaskOutput.TYPE]
        width = max(len(row["type"]) for row in shown) if shown else 0
        for row in shown:
            when = local_time(row["recorded_at"])
            print(f"{row['position']:>8}  {when}  {row['type']:<{width}}  {row['summary']}")
        if state is not None:
            print(status_text(args, state))
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
        raise UsageError(
            f"--until {until!r}: give an event position (a number) or an ISO 8601 time"
            " such as 2026-01-31T12:00:00"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return models.position_at(moment)


def cmd_logs(args: argparse.Namespace) -> int:
    store = open_store(args)
    try:
        return asyncio.run(_logs(args, store))
    finally:
        store.close()


async def _logs(args: argparse.Namespace, store: EventStore) -> int:
    after = store.last_position()
    events = store.read_stream(run_stream(args.run))
    if not events:
        raise UsageError(f"no run {args.run!r} in {store}")
    state = RunState()
    for stored in events:
        state.apply(decode(stored), stored.recorded_text)
    if args.task is not None and args.task not in state.tasks:
        known = ", ".join(state.tasks)
        raise UsageError(f"run {args.run} has no task {args.task!r} (its tasks: {known})")
    if args.follow and state.status not in ENDED_RUN:
        await _follow_logs(args, store, events, state, after)
        return 0
    printed = 0
    for task_id in [args.task] if args.task else list(state.tasks):
        for attempt in attempt_logs(state.tasks[task_id], args.attempt):
            text = task_output(events, state.tasks[task_id], attempt)
            print(f"== {task_id}, attempt {attempt.attempt} ({attempt.status}) ==")
            sys.stdout.write(text if text.endswith("\n") or not text else text + "\n")
            printed += 1
    if not printed:
        which = f"task {args.task}" if args.task else "this run"
        print(f"plait: {which} has no output yet", file=sys.stderr)
    sys.stdout.flush()
    return 0


async def _follow_logs(
    args: argparse.Namespace,
    store: EventStore,
    events: list[StoredEvent],
    state: RunState,
    after: int,
) -> None:
    """Print the output recorded so far, then each new chunk as it is recorded, until the
    run ends: from the events alone, in their order, so nothing is printed twice."""
    stream = run_stream(args.run)
    seen = {stored.position for stored in events}
    for stored in events:
        _print_chunk(args, stored)
    async for stored in store.subscribe(after):
        if stored.stream_id != stream or stored.position in seen:
            continue
        state.apply(decode(stored), stored.recorded_text)
        _print_chunk(args, stored)
        if state.status in ENDED_RUN:
            return


def _print_chunk(args: argparse.Namespace, stored: StoredEvent) -> None:
    if stored.type != TaskOutput.TYPE:
        return
    data = stored.data
    if args.task is not None and data.get("task_id") != args.task:
        return
    if args.attempt is not None and data.get("attempt") != args.attempt:
        return
    prefix = "" if args.task else f"[{data.get('task_id')}] "
    text = str(data.get("text") or "")
    for line in text.splitlines():
        print(prefix + line, flush=True)


def _lines(items: Iterable[str]) -> str:
    return "\n".join(items)
