"""Run a task's command in its own process group, stream its output, and stop it for sure.

Guarantees of `start_process`/`run_process`:
- stdin is /dev/null (`codex exec` waits for EOF on an inherited pipe);
- the child leads a new session, so stopping it signals the whole group:
  SIGTERM, then SIGKILL after `grace` seconds, grandchildren included;
- when the child exits by itself, whatever it left running in its group is
  stopped the same way (a task must not leave servers behind in a worktree);
- "the group" is the task's whole session (sessions.py): its process group and every
  descendant that left it (a `setsid` daemon), found by the mark in their environment;
- waiting never depends on the pipes closing: the child's exit is awaited on its own, and
  a descendant that escaped everything and still holds a pipe is read from only while it
  writes (one grace period of silence ends the reading);
- the child dies with the thread that spawned it (PR_SET_PDEATHSIG), and the rest of its
  session with the plait process (the reaper, sessions.py), however plait dies;
- output is delivered as text chunks of at most `max_chunk` characters, read
  from both streams concurrently; memory stays bounded whatever the volume,
  and the full byte stream goes to `log_path` when one is given.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from plait.execution.runners import sessions
from plait.execution.runners.process_groups import group_alive, signal_group
from plait.execution.runners.process_output import OutputCallback, OutputSink, pump

__all__ = [
    "OutputCallback",
    "ProcessHandle",
    "ProcessResult",
    "preparation_env",
    "run_process",
    "start_process",
    "task_env",
]

DEFAULT_GRACE = 5.0
_POLL = 0.05  # how often a stopping group is checked for survivors
_KILL_WAIT = 5.0
_STREAM_LIMIT = 2**16  # asyncio's default StreamReader limit

TASK_VARIABLES = frozenset(
    {
        "PLAIT_RUN_ID",
        "PLAIT_TASK_ID",
        "PLAIT_TASK_TITLE",
        "PLAIT_TASK_PROMPT",
        "PLAIT_WORKTREE",
        # A planning command (Session 0): the spec it plans from, the file it writes.
        "PLAIT_SPEC",
        "PLAIT_PLAN_OUTPUT",
    }
)
# Would make git in the task act on another repository than its worktree.
_GIT_LOCATION_VARIABLES = frozenset(
    {"GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY", "GIT_COMMON_DIR"}
)


def task_env(base_env: Mapping[str, str], extra: Mapping[str, str]) -> dict[str, str]:
    """The environment for a task: `base_env` without plait's own PLAIT_* settings and
    secrets (PLAIT_TOKEN, PLAIT_DATABASE_URL, ...) or git location overrides, plus `extra`.

    `extra` may set the task variables (TASK_VARIABLES) but no other PLAIT_* name.
    """
    refused = sorted(k for k in extra if k.startswith("PLAIT_") and k not in TASK_VARIABLES)
    if refused:
        raise ValueError(f"not a task variable: {', '.join(refused)}")
    env = {
        k: v
        for k, v in base_env.items()
        if not k.startswith("PLAIT_") and k not in _GIT_LOCATION_VARIABLES
    }
    env.update(extra)
    return env


def preparation_env(env: Mapping[str, str]) -> dict[str, str]:
    """The environment for the commands that prepare and test a worktree (setup_command,
    test_setup_command, test_command): `env` without the virtualenv plait was started in,
    and with pip refusing to install outside one.

    A setup's `pip install -e .` would otherwise repoint the user's own environment at a
    worktree plait deletes after the run; now it fails and says so, and the plan builds an
    environment inside the worktree instead (docs/plan-format.md).
    """
    env = dict(env)
    venv = env.pop("VIRTUAL_ENV", None)
    env.pop("VIRTUAL_ENV_PROMPT", None)
    if venv:
        scripts = os.path.normpath(os.path.join(venv, "bin"))
        path = env.get("PATH", "").split(os.pathsep)
        env["PATH"] = os.pathsep.join(p for p in path if os.path.normpath(p) != scripts)
    env["PIP_REQUIRE_VIRTUALENV"] = "true"
    return env


class _ExitProtocol(asyncio.subprocess.SubprocessStreamProtocol):
    """asyncio's protocol, plus a future set when the child exits: Process.wait() also
    waits for both pipes to close, which a daemon holding them may never let happen."""

    def __init__(self, limit: int, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(limit=limit, loop=loop)
        self.exited: asyncio.Future[object] = loop.create_future()

    def process_exited(self) -> None:
        super().process_exited()
        if not self.exited.done():
            self.exited.set_result(None)


@dataclass(frozen=True)
class ProcessResult:
    exit_code: int | None  # negative: ended by that signal (asyncio's convention)
    timed_out: bool
    killed: bool  # we signalled it (timeout, terminate or cancellation) before it exited
    duration: float
    output_tail: str  # last ~4 KB of stdout and stderr together
    pid: int

    @property
    def succeeded(self) -> bool:
        """Exit status 0, and plait did not have to stop it: a process that ran into its
        timeout has failed, whatever status its SIGTERM handler exits with."""
        return self.exit_code == 0 and not self.killed


class ProcessHandle:
    """A started process. `wait()` for its result; `terminate()` to stop its whole group.

    Cancelling a task that awaits `wait()` or `terminate()` stops the group too.
    """

    def __init__(
        self,
        proc: asyncio.subprocess.Process,
        transport: asyncio.SubprocessTransport,
        exited: asyncio.Future[object],
        session: str,
        sink: OutputSink,
        max_chunk: int,
        timeout: float | None,
        grace: float,
    ) -> None:
        assert proc.stdout is not None
        assert proc.stderr is not None
        self._proc = proc
        self._transport = transport
        self._exited = exited
        self.session = session
        self._sink = sink
        self._grace = grace
        self._started = time.monotonic()
        self._stop = asyncio.Event()
        self._timed_out = False
        self._killed = False
        self._readers = [
            asyncio.create_task(pump("stdout", proc.stdout, sink, max_chunk)),
            asyncio.create_task(pump("stderr", proc.stderr, sink, max_chunk)),
        ]
        self._supervisor = asyncio.create_task(self._supervise(timeout))

    @property
    def pid(self) -> int:
        """Also the process group id: the child leads its own session."""
        return self._proc.pid

    async def wait(self) -> ProcessResult:
        try:
            result = await asyncio.shield(self._supervisor)
        except asyncio.CancelledError:
            await self._stop_after_cancel()
            raise
        if self._sink.callback_error is not None:
            raise self._sink.callback_error
        return result

    async def terminate(self, grace: float | None = None) -> ProcessResult:
        """SIGTERM the whole group, SIGKILL whatever is left after `grace` seconds."""
        if grace is not None:
            self._grace = grace
        self._stop.set()
        return await self.wait()

    def kill(self) -> None:
        """SIGKILL the whole group and session now, without grace."""
        self._killed = True
        signal_group(self.pid, signal.SIGKILL)
        sessions.kill_session(self.session)

    async def _stop_after_cancel(self) -> None:
        self._stop.set()
        try:
            await asyncio.shield(self._supervisor)
        except asyncio.CancelledError:
            self.kill()  # cancelled again while stopping: no more grace
            raise

    async def _supervise(self, timeout: float | None) -> ProcessResult:
        exited = self._exited
        stop: asyncio.Future[object] = asyncio.ensure_future(self._stop.wait())
        done, _ = await asyncio.wait(
            {exited, stop}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
        )
        stop.cancel()
        if exited not in done:
            self._timed_out = not self._stop.is_set()
            self._killed = True
        await self._stop_group()
        await exited
        await self._drain()
        self._sink.close()
        self._transport.close()  # our ends of the pipes, even if an escaped process holds theirs
        return ProcessResult(
            exit_code=self._proc.returncode,
            timed_out=self._timed_out,
            killed=self._killed,
            duration=time.monotonic() - self._started,
            output_tail=self._sink.tail(),
            pid=self.pid,
        )

    def _session_alive(self) -> bool:
        return group_alive(self.pid) or bool(sessions.members(self.session))

    async def _stop_group(self) -> None:
        """TERM the session if anything in it still runs; KILL survivors after the grace."""
        if not self._session_alive():
            return
        signal_group(self.pid, signal.SIGTERM)
        sessions.signal_session(self.session, signal.SIGTERM)
        deadline = time.monotonic() + self._grace
        await self._until_group_gone(deadline)
        signal_group(self.pid, signal.SIGKILL)
        sessions.kill_session(self.session)
        # SIGKILL is delivered asynchronously: callers are promised that nothing
        # of the session still runs when we return (a process stuck in the kernel
        # can outlast even this bound).
        await self._until_group_gone(time.monotonic() + _KILL_WAIT)

    async def _until_group_gone(self, deadline: float) -> None:
        while self._session_alive() and time.monotonic() < deadline:
            await asyncio.sleep(_POLL)

    async def _drain(self) -> None:
        # A process that left our group with setsid() can keep the pipes open
        # for ever: stop reading once a whole grace period brings no new bytes.
        pending: set[asyncio.Task[None]] = set(self._readers)
        seen = -1
        while pending and seen != self._sink.bytes_seen:
            seen = self._sink.bytes_seen
            _, pending = await asyncio.wait(pending, timeout=self._grace)
        for reader in pending:
            reader.cancel()
        await asyncio.gather(*self._readers, return_exceptions=True)


async def start_process(
    argv: Sequence[str] | None = None,
    *,
    shell_command: str | None = None,
    cwd: Path,
    env: Mapping[str, str],
    timeout: float | None,
    on_output: OutputCallback | None = None,
    max_chunk: int = 8192,
    log_path: Path | None = None,
    grace: float = DEFAULT_GRACE,
) -> ProcessHandle:
    """Start `argv`, or the user's own `shell_command` via /bin/sh -c (exactly one of them)."""
    if (argv is None) == (shell_command is None):
        raise ValueError("give exactly one of argv and shell_command")
    command = ["/bin/sh", "-c", shell_command] if shell_command is not None else list(argv or ())
    if not command or max_chunk < 1:
        raise ValueError("empty command or max_chunk < 1")
    sink = OutputSink(on_output, log_path)
    session = sessions.new_session()
    loop = asyncio.get_running_loop()
    try:
        sessions.prepare_spawn()
        transport, protocol = await loop.subprocess_exec(
            lambda: _ExitProtocol(_STREAM_LIMIT, loop),
            *command,
            cwd=cwd,
            env={**env, sessions.SESSION_VARIABLE: session},
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
            preexec_fn=sessions.die_with_parent,
        )
    except BaseException:
        sink.close()
        raise
    proc = asyncio.subprocess.Process(transport, protocol, loop)
    return ProcessHandle(proc, transport, protocol.exited, session, sink, max_chunk, timeout, grace)


async def run_process(
    argv: Sequence[str] | None = None,
    *,
    shell_command: str | None = None,
    cwd: Path,
    env: Mapping[str, str],
    timeout: float | None,
    on_output: OutputCallback | None = None,
    max_chunk: int = 8192,
    log_path: Path | None = None,
    grace: float = DEFAULT_GRACE,
) -> ProcessResult:
    """start_process + wait. Cancelling the caller stops the whole process group."""
    handle = await start_process(
        argv,
        shell_command=shell_command,
        cwd=cwd,
        env=env,
        timeout=timeout,
        on_output=on_output,
        max_chunk=max_chunk,
        log_path=log_path,
        grace=grace,
    )
    return await handle.wait()
