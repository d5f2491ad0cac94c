"""A task's whole session dies with it: at its end, at its timeout, on stop, and with the
plait process that started it, even a SIGKILLed one; and waiting never hangs on a
descendant that left the task's group (a `setsid` daemon) and still holds its stdout."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from plait.execution.runners import sessions
from plait.execution.runners.processes import run_process, start_process

PY = sys.executable
ENV = dict(os.environ)
BOUND = 30.0  # seconds: a generous bound on what must happen in well under one

# A daemon: leaves the task's session and group, prints its pid on the task's stdout (which
# it keeps open), leaves a file `up` in its directory, and waits for ever.
DAEMON = (
    f"{PY} -c 'import os, time; os.setsid(); print(os.getpid(), flush=True);"
    ' open("up", "w").close(); time.sleep(1000)\''
)
# The task's shell waits (bounded) until the daemon is up.
UP = "i=0; while [ ! -e up ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done"


def running(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def wait_until_gone(pids: list[int], bound: float = BOUND) -> list[int]:
    """The pids still running after `bound` seconds (at once, if none is)."""
    deadline = time.monotonic() + bound
    alive = [p for p in pids if running(p)]
    while alive and time.monotonic() < deadline:
        time.sleep(0.05)
        alive = [p for p in alive if running(p)]
    return alive


class FirstLine:
    def __init__(self) -> None:
        self.text = ""
        self.seen = asyncio.Event()

    def __call__(self, stream: str, text: str) -> None:
        self.text += text if stream == "stdout" else ""
        if "\n" in self.text:
            self.seen.set()

    def pid(self) -> int:
        return int(self.text.split()[0])


async def test_a_task_that_leaves_a_setsid_daemon_holding_its_stdout_returns_and_the_daemon_dies(
    tmp_path: Path,
) -> None:
    out = FirstLine()
    result = await asyncio.wait_for(
        run_process(
            shell_command=f"{DAEMON} & {UP}; exit 0",
            cwd=tmp_path,
            env=ENV,
            timeout=None,
            grace=0.5,
            on_output=out,
        ),
        BOUND,
    )
    assert result.exit_code == 0
    assert wait_until_gone([out.pid()]) == []


async def test_a_timeout_returns_and_kills_a_setsid_daemon_of_the_task(tmp_path: Path) -> None:
    out = FirstLine()
    result = await asyncio.wait_for(
        run_process(
            shell_command=f"{DAEMON} & {UP}; sleep 1000",
            cwd=tmp_path,
            env=ENV,
            timeout=5.0,
            grace=0.5,
            on_output=out,
        ),
        BOUND,
    )
    assert (result.timed_out, result.killed) == (True, True)
    assert wait_until_gone([out.pid()]) == []


async def test_a_stop_returns_and_kills_a_setsid_daemon_of_the_task(tmp_path: Path) -> None:
    out = FirstLine()
    handle = await start_process(
        shell_command=f"{DAEMON} & sleep 1000",
        cwd=tmp_path,
        env=ENV,
        timeout=None,
        grace=0.5,
        on_output=out,
    )
    await asyncio.wait_for(out.seen.wait(), BOUND)
    daemon = out.pid()
    assert running(daemon)
    result = await asyncio.wait_for(handle.terminate(), BOUND)
    assert (result.killed, result.timed_out) == (True, False)
    assert wait_until_gone([daemon, handle.pid]) == []


async def test_a_daemon_is_found_by_its_session_mark_whatever_group_it_moved_to(
    tmp_path: Path,
) -> None:
    out = FirstLine()
    handle = await start_process(
        shell_command=f"{DAEMON} & sleep 1000",
        cwd=tmp_path,
        env=ENV,
        timeout=None,
        grace=0.5,
        on_output=out,
    )
    await asyncio.wait_for(out.seen.wait(), BOUND)
    daemon = out.pid()
    assert os.getpgid(daemon) != handle.pid  # it left the task's group...
    assert daemon in sessions.members(handle.session)  # ...but not the task's session
    await handle.terminate(grace=0.2)


# A driver: starts a task whose direct child, a background grandchild in its group and a
# setsid daemon all wait for ever; writes their pids to the file given, then waits itself.
DRIVER = textwrap.dedent(
    """
    import asyncio, sys
    from pathlib import Path
    from plait.execution.runners.processes import start_process

    async def main() -> None:
        pids = Path(sys.argv[1])
        command = (
            "sleep 1000 & echo $! > " + str(pids) + ".bg; "
            + sys.argv[2] + " > " + str(pids) + ".daemon & "
            "echo $$ > " + str(pids) + ".child; exec sleep 1000"
        )
        await start_process(shell_command=command, cwd=pids.parent, env={"PATH": "/usr/bin:/bin"},
                            timeout=None)
        await asyncio.Event().wait()

    asyncio.run(main())
    """
)


def test_a_sigkilled_drivers_task_processes_all_die(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    driver = subprocess.Popen([PY, "-c", DRIVER, str(pids), DAEMON], cwd=tmp_path)
    try:
        files = [Path(f"{pids}.{name}") for name in ("bg", "daemon", "child")]
        deadline = time.monotonic() + BOUND
        while not all(f.exists() and f.read_text().strip() for f in files):
            assert time.monotonic() < deadline, "the driver's task never started"
            assert driver.poll() is None, "the driver died"
            time.sleep(0.05)
        task_pids = [int(f.read_text().split()[0]) for f in files]
        assert all(running(p) for p in task_pids)
        driver.send_signal(signal.SIGKILL)
        driver.wait(BOUND)
        assert wait_until_gone(task_pids) == []
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait()
