"""How an attempt's processes run: the task's environment, its output as bounded events and
a log file, and a process supervised under the run's stop (and the sandbox, when asked)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Literal

from plait.domain.events import (
    TaskOutput,
)
from plait.domain.plan.model import Task
from plait.execution.run.context import RunContext
from plait.execution.run.task_work import TaskIds
from plait.execution.runners.agent_check import AgentInfo, with_own_tools
from plait.execution.runners.agent_output import LineFeed
from plait.execution.runners.agents import Command, agent_env
from plait.execution.runners.output_buffer import OutputBuffer
from plait.execution.runners.processes import (
    ProcessHandle,
    ProcessResult,
    start_process,
    task_env,
)
from plait.execution.runners.sandbox import sandboxed
from plait.execution.worktrees.manager import Worktree


def output_buffer(ctx: RunContext, ids: TaskIds, log_path: Path) -> OutputBuffer:
    """Output as bounded TaskOutput events, and all of it in the attempt's log file."""
    log_path.parent.mkdir(parents=True, exist_ok=True)

    async def emit(stream: str, text: str) -> None:
        kind: Literal["stdout", "stderr"] = "stderr" if stream == "stderr" else "stdout"
        await ctx.recorder.record(TaskOutput(**ids, stream=kind, text=text))

    return OutputBuffer(
        emit,
        chunk_bytes=ctx.settings.output_chunk_bytes,
        flush_seconds=ctx.settings.output_flush_seconds,
        budget_bytes=ctx.settings.max_output_event_bytes,
        log_path=str(log_path),
    )


def environment(
    ctx: RunContext, task: Task, worktree: Worktree, command: Command
) -> dict[str, str]:
    """plait's environment without its own secrets, the task variables, and what the
    command's preset and profile allow of the provider settings."""
    variables = {
        "PLAIT_RUN_ID": ctx.run_id,
        "PLAIT_TASK_ID": task.id,
        "PLAIT_TASK_TITLE": task.title or task.id,
        "PLAIT_TASK_PROMPT": task.prompt or "",
        "PLAIT_WORKTREE": str(worktree.path),
    }
    env = agent_env(task_env(os.environ, variables), command)
    return with_own_tools(env, agent_info(ctx, command))


def agent_info(ctx: RunContext, command: Command) -> AgentInfo | None:
    if command.preset is None:
        return None
    program = command.argv[0] if command.argv else command.preset.program
    return ctx.agents.get(program) or ctx.agents.get(command.preset.program)


async def supervised(
    ctx: RunContext,
    shell: str | None,
    argv: list[str] | None,
    worktree: Worktree,
    env: dict[str, str],
    timeout: float,
    buffer: OutputBuffer,
    log_path: Path,
    feed: LineFeed | None = None,
) -> ProcessResult | None:
    """Run a process; None if the run was stopped meanwhile (the process group is killed).
    With `feed` (an agent's output parser) the output events carry its rendering of each
    line; the log file keeps every byte as the CLI wrote it."""

    async def on_output(stream: str, text: str) -> None:
        if feed is None:
            await buffer.add(stream, text)
            return
        rendered = feed.add(stream, text)
        if rendered:
            await buffer.add(stream, rendered)

    if ctx.plan.sandbox is not None:
        # The agent's scratch directory (`<task>.<attempt>.scratch`, as the worktree id ends).
        scratch = ctx.log_dir / f"{worktree.worktree_id.rsplit('/', 1)[-1]}.scratch"
        argv = sandboxed(
            argv if argv is not None else ["/bin/sh", "-c", shell or ""],
            cwd=worktree.path,
            writable=[scratch] if scratch.is_dir() else [],
            readable=[ctx.repo, await ctx.git.common_dir()],
            network=ctx.plan.sandbox_network,
        )
        shell = None
    handle: ProcessHandle = await start_process(
        argv,
        shell_command=shell,
        cwd=worktree.path,
        env=env,
        timeout=timeout,
        on_output=on_output,
        max_chunk=ctx.settings.output_chunk_bytes,
        log_path=log_path,
        grace=ctx.settings.stop_grace,
    )
    waiter = asyncio.ensure_future(handle.wait())
    stopper = asyncio.ensure_future(ctx.stop.wait())
    await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
    stopper.cancel()
    if feed is not None:
        for stream, text in feed.flush().items():
            await buffer.add(stream, text)
    if waiter.done():
        return waiter.result()
    waiter.cancel()
    await handle.terminate(ctx.settings.stop_grace)
    return None


def exit_text(result: ProcessResult) -> str:
    if result.timed_out:
        return f"timed out after {result.duration:.0f} s"
    if result.exit_code is not None and result.exit_code < 0:
        return f"killed by signal {-result.exit_code}"
    return f"exit status {result.exit_code}"


def output_tail(result: ProcessResult, lines: int = 15) -> str:
    return "\n".join(result.output_tail.strip().splitlines()[-lines:])
