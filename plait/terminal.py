"""Terminal views of a run: live progress while it runs, a summary table when it ends.

Statuses are shown as they are named in plait.domain.statuses, the words of the API and
the dashboard too; only their colour is the terminal's.
"""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from plait.domain.run import RunState, task_note
from plait.domain.run.entities import READY_QUEUE
from plait.domain.statuses import SETTLED_TASK, BatchStatus, RunStatus, TaskStatus

STYLES: dict[str, str] = {
    TaskStatus.PENDING: "dim",
    TaskStatus.RUNNING: "bold cyan",
    TaskStatus.RESOLVING: "bold cyan",
    TaskStatus.SUCCEEDED: "green",
    TaskStatus.NO_CHANGE: "yellow",
    TaskStatus.FAILED: "bold red",
    TaskStatus.CONFLICTED: "bold yellow",
    TaskStatus.RERUN: "yellow",
    TaskStatus.EJECTED: "bold magenta",
    TaskStatus.LANDED: "bold green",
    TaskStatus.KEPT: "bold yellow",
    TaskStatus.SKIPPED: "yellow",
    RunStatus.STOPPING: "yellow",
    RunStatus.KEPT: "bold yellow",
    RunStatus.STOPPED: "yellow",
    BatchStatus.MERGING: "bold blue",
    BatchStatus.TESTING: "bold blue",
    BatchStatus.COMPLETED: "bold green",
    BatchStatus.CANCELLED: "yellow",
}


def badge(status: str | None) -> Text:
    return Text(str(status or "-"), style=STYLES.get(status or "", ""))


def progress_view(state: RunState) -> RenderableType:
    header = Text.assemble(
        ("run ", "bold"), (state.run_id, "bold"), "  ", badge(state.status),
        f"  {state.mode or ''} mode", f"  schedule {state.schedule}",
        f"  base {state.base_branch or '?'}",
    )  # fmt: skip
    table = Table(box=None, pad_edge=False, show_header=True, header_style="dim")
    table.add_column("batch / task")
    table.add_column("progress", width=24)
    table.add_column("status")
    table.add_column("attempt", justify="right")
    table.add_column("last output", overflow="ellipsis", no_wrap=True, max_width=60)
    groups: list[tuple[str, str | None, list[str]]] = [
        (f"batch {b.batch_id}" + (" (parallel)" if b.can_parallel else ""), b.status, b.task_ids)
        for b in state.sorted_batches()
    ]
    queued = [t.task_id for t in state.tasks.values() if t.batch_id == READY_QUEUE]
    if state.schedule == "ready" and queued:  # not in a merge round yet
        groups.insert(0, ("ready queue", None, queued))
    for title, status, task_ids in groups:
        tasks = [state.tasks[t] for t in task_ids if t in state.tasks]
        done = sum(1 for t in tasks if t.status in SETTLED_TASK)
        table.add_row(
            Text(title, "bold"),
            ProgressBar(total=max(len(tasks), 1), completed=done, width=22),
            badge(status), "", "",
        )  # fmt: skip
        for task in tasks:
            finished = 1 if task.status in SETTLED_TASK else 0
            running = task.status in (TaskStatus.RUNNING, TaskStatus.RESOLVING)
            table.add_row(
                f"  {task.task_id}",
                ProgressBar(total=1, completed=finished, width=22, pulse=running),
                badge(task.status),
                str(task.attempt or ""),
                Text(task.last_output_line or task.error or "", style="dim"),
            )
    return Group(header, table)


def summary_table(state: RunState) -> Table:
    agents = any(t.agent for t in state.tasks.values())
    table = Table(title=f"run {state.run_id}: {state.status}", show_footer=agents)
    table.add_column("task", footer="total" if agents else "")
    table.add_column("status")
    table.add_column("attempts", justify="right")
    table.add_column("duration", justify="right")
    if agents:
        total_in = sum(t.total_tokens_in for t in state.tasks.values())
        total_out = sum(t.total_tokens_out for t in state.tasks.values())
        total_cost = sum(t.total_cost_usd for t in state.tasks.values())
        table.add_column("agent")
        table.add_column("tokens in/out", justify="right", footer=_tokens(total_in, total_out))
        table.add_column("cost", justify="right", footer=_usd(total_cost))
    table.add_column("commit")
    table.add_column("note", max_width=70)
    for task in state.tasks.values():
        agent_cells: list[str] = []
        if agents:
            agent_cells = [
                " ".join(filter(None, (task.agent, task.agent_version, task.model))),
                _tokens(task.total_tokens_in, task.total_tokens_out) if task.agent else "",
                _usd(task.total_cost_usd) if task.agent else "",
            ]
        table.add_row(
            task.task_id,
            badge(task.status),
            str(task.attempt or 0),
            f"{task.duration:.1f}s" if task.duration else "",
            *agent_cells,
            (task.commit or "")[:12],
            task_note(state, task),
        )
    return table


def _tokens(tokens_in: int, tokens_out: int) -> str:
    return f"{tokens_in:,}/{tokens_out:,}"


def _usd(amount: float) -> str:
    return f"${amount:.4f}"


def landed_all(state: RunState) -> bool:
    """Every task landed, and so did the run (or its base had the result already)."""
    return state.status in (RunStatus.LANDED, RunStatus.SUCCEEDED) and all(
        t.status == TaskStatus.LANDED for t in state.tasks.values()
    )
