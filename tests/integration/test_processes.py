"""run_process/start_process against real children: streaming, bounds, timeouts and stopping."""

from __future__ import annotations

import asyncio
import os
import sys
import tracemalloc
from pathlib import Path

import pytest

from plait.execution.runners import sessions
from plait.execution.runners.process_output import split_chunks
from plait.execution.runners.processes import ProcessResult, run_process, start_process, task_env
from plait.execution.runners.sessions import SESSION_VARIABLE

PY = sys.executable
ENV = dict(os.environ)

# A grandchild that ignores SIGTERM, prints its pid, and waits for ever.
STUBBORN = (
    "import os, signal; signal.signal(signal.SIGTERM, signal.SIG_IGN);"
    " print(os.getpid(), flush=True); signal.pause()"
)
# A child that runs STUBBORN and waits for it.
PARENT_OF_STUBBORN = f"import subprocess, sys; subprocess.run([sys.executable, '-c', {STUBBORN!r}])"


def running(pid: int) -> bool:
    """Whether `pid` is alive; a zombie nobody reaped (pid 1 in a container) is not."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


class Collector:
    """on_output callback that records chunks and announces the first pid printed."""

    def __init__(self) -> None:
        self.chunks: list[tuple[str, str]] = []
        self.first_output = asyncio.Event()

    def __call__(self, stream: str, text: str) -> None:
        self.chunks.append((stream, text))
        self.first_output.set()

    def text(self, stream: str) -> str:
        return "".join(t for s, t in self.chunks if s == stream)

    def pid(self) -> int:
        return int(self.text("stdout").split()[0])


async def run_py(code: str, tmp_path: Path, **kwargs: object) -> ProcessResult:
    return await run_process([PY, "-c", code], cwd=tmp_path, env=ENV, **kwargs)  # type: ignore[arg-type]


async def test_both_streams_are_delivered_as_whole_lines(tmp_path: Path) -> None:
    out = Collector()
    code = "import sys\nfor i in range(3): print('out', i)\nprint('err', file=sys.stderr)"
    result = await run_py(code, tmp_path, timeout=60, on_output=out)
    assert out.text("stdout") == "out 0\nout 1\nout 2\n"
    assert out.text("stderr") == "err\n"
    assert all(text.endswith("\n") for _, text in out.chunks)
    assert (result.exit_code, result.timed_out, result.killed) == (0, False, False)
    assert "out 2" in result.output_tail


async def test_an_async_callback_is_awaited(tmp_path: Path) -> None:
    seen: list[str] = []

    async def on_output(stream: str, text: str) -> None:
        await asyncio.sleep(0)
        seen.append(text)

    await run_py("print('hello')", tmp_path, timeout=60, on_output=on_output)
    assert seen == ["hello\n"]


async def test_a_long_line_is_cut_into_chunks_no_larger_than_max_chunk(tmp_path: Path) -> None:
    out = Collector()
    code = "import sys; sys.stdout.write('x' * 100_000)"
    await run_py(code, tmp_path, timeout=60, on_output=out, max_chunk=1000)
    assert out.text("stdout") == "x" * 100_000
    assert max(len(text) for _, text in out.chunks) == 1000


async def test_megabytes_of_output_stay_bounded_in_memory_and_complete_on_disk(
    tmp_path: Path,
) -> None:
    total = 0
    largest = 0

    def count(stream: str, text: str) -> None:
        nonlocal total, largest
        total += len(text)
        largest = max(largest, len(text))

    line = "0123456789" * 9 + "abcdefghi\n"  # 100 bytes
    code = f"import sys\nfor _ in range(80_000): sys.stdout.write({line!r})"
    log = tmp_path / "task.log"
    tracemalloc.start()
    try:
        result = await run_py(code, tmp_path, timeout=120, on_output=count, log_path=log)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert total == 8_000_000
    assert largest <= 8192
    assert log.stat().st_size == 8_000_000
    assert log.read_text() == line * 80_000
    assert len(result.output_tail.encode()) <= 4096
    assert result.output_tail.endswith(line)
    assert peak < 2_000_000  # the 8 MB never sit in memory at once


async def test_invalid_utf8_is_replaced_not_fatal(tmp_path: Path) -> None:
    out = Collector()
    await run_py(
        "import sys; sys.stdout.buffer.write(b'a\\xffb\\n')", tmp_path, timeout=60, on_output=out
    )
    assert out.text("stdout") == "a\ufffdb\n"


async def test_a_partial_line_is_delivered_while_the_process_keeps_running(
    tmp_path: Path,
) -> None:
    out = Collector()
    code = "import sys, signal; sys.stdout.write('50%'); sys.stdout.flush(); signal.pause()"
    handle = await start_process(
        [PY, "-c", code], cwd=tmp_path, env=ENV, timeout=None, on_output=out
    )
    await out.first_output.wait()
    assert out.chunks == [("stdout", "50%")]
    result = await handle.terminate(grace=1)
    assert result.killed


async def test_stdin_is_dev_null_so_cat_exits_at_once(tmp_path: Path) -> None:
    result = await run_process(["cat"], cwd=tmp_path, env=ENV, timeout=600)
    assert (result.exit_code, result.timed_out) == (0, False)


async def test_argv_elements_are_never_interpreted_by_a_shell(tmp_path: Path) -> None:
    out = Collector()
    tricky = "$(touch pwned); `touch pwned2` && echo 'x' > y"
    await run_process(["printf", "%s", tricky], cwd=tmp_path, env=ENV, timeout=60, on_output=out)
    assert out.text("stdout") == tricky
    assert sorted(p.name for p in tmp_path.iterdir()) == []


async def test_a_shell_command_runs_through_sh_in_the_given_directory(tmp_path: Path) -> None:
    out = Collector()
    result = await run_process(
        shell_command="pwd; exit 3", cwd=tmp_path, env=ENV, timeout=60, on_output=out
    )
    assert out.text("stdout") == f"{tmp_path}\n"
    assert result.exit_code == 3


async def test_exactly_one_of_argv_and_shell_command_is_required(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="exactly one"):
        await run_process(["true"], shell_command="true", cwd=tmp_path, env=ENV, timeout=1)
    with pytest.raises(ValueError, match="exactly one"):
        await run_process(cwd=tmp_path, env=ENV, timeout=1)


async def test_the_environment_given_is_the_whole_environment_plus_the_session_mark(
    tmp_path: Path,
) -> None:
    out = Collector()
    env = {"PATH": os.environ["PATH"], "ONLY_THIS": "1"}
    await run_process(["env"], cwd=tmp_path, env=env, timeout=60, on_output=out)
    seen = dict(line.split("=", 1) for line in out.text("stdout").split())
    mark = seen.pop(SESSION_VARIABLE)
    assert seen == env
    assert mark.startswith(sessions.instance() + ".")


async def test_a_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    out = Collector()
    result = await run_py(PARENT_OF_STUBBORN, tmp_path, timeout=0.5, grace=0.2, on_output=out)
    assert (result.timed_out, result.killed) == (True, True)
    assert result.exit_code is not None
    assert result.exit_code < 0
    assert not running(out.pid())


async def test_terminate_kills_a_grandchild_that_ignores_sigterm(tmp_path: Path) -> None:
    out = Collector()
    handle = await start_process(
        [PY, "-c", PARENT_OF_STUBBORN], cwd=tmp_path, env=ENV, timeout=None, on_output=out
    )
    await out.first_output.wait()
    grandchild = out.pid()
    assert running(grandchild)
    result = await handle.terminate(grace=0.2)
    assert (result.killed, result.timed_out) == (True, False)
    assert not running(grandchild)
    assert not running(handle.pid)


async def test_cancelling_the_waiting_task_stops_the_process_tree(tmp_path: Path) -> None:
    out = Collector()
    task = asyncio.create_task(
        run_py(PARENT_OF_STUBBORN, tmp_path, timeout=None, grace=0.2, on_output=out)
    )
    await out.first_output.wait()
    grandchild = out.pid()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not running(grandchild)


async def test_a_background_process_left_behind_by_a_finished_task_is_stopped(
    tmp_path: Path,
) -> None:
    out = Collector()
    result = await run_process(
        shell_command="sleep 1000 >/dev/null 2>&1 & echo $!",
        cwd=tmp_path,
        env=ENV,
        timeout=60,
        grace=0.2,
        on_output=out,
    )
    assert (result.exit_code, result.killed) == (0, False)
    assert not running(out.pid())


async def test_a_failing_callback_is_raised_after_the_process_is_drained(tmp_path: Path) -> None:
    def explode(stream: str, text: str) -> None:
        raise RuntimeError("sink broke")

    log = tmp_path / "log"
    code = "for i in range(100_000): print(i)"
    with pytest.raises(RuntimeError, match="sink broke"):
        await run_py(code, tmp_path, timeout=60, on_output=explode, log_path=log)
    assert log.read_text().splitlines()[-1] == "99999"


def test_chunks_end_at_line_ends_and_keep_a_partial_line_for_later() -> None:
    assert split_chunks("a\nb\nc", 10, final=False) == (["a\nb\n"], "c")
    assert split_chunks("a\nb\nc", 10, final=True) == (["a\nb\n", "c"], "")
    assert split_chunks("abcdef", 4, final=False) == (["abcd"], "ef")
    assert split_chunks("ab\ncdefgh\n", 4, final=False) == (["ab\n", "cdef", "gh\n"], "")


def test_task_env_strips_plaits_own_settings_and_secrets() -> None:
    base = {
        "PATH": "/usr/bin",
        "HOME": "/home/u",
        "PLAIT_TOKEN": "secret",
        "PLAIT_DATABASE_URL": "postgresql://u:p@h/db",
        "PLAIT_ANYTHING": "x",
        "PLAIT_TASK_ID": "stale",
        "GIT_DIR": "/elsewhere/.git",
    }
    extra = {"PLAIT_RUN_ID": "r1", "PLAIT_TASK_ID": "t1", "PLAIT_WORKTREE": "/w", "EXTRA": "1"}
    assert task_env(base, extra) == {
        "PATH": "/usr/bin",
        "HOME": "/home/u",
        "PLAIT_RUN_ID": "r1",
        "PLAIT_TASK_ID": "t1",
        "PLAIT_WORKTREE": "/w",
        "EXTRA": "1",
    }


def test_task_env_refuses_to_pass_a_non_task_plait_variable() -> None:
    with pytest.raises(ValueError, match="PLAIT_TOKEN"):
        task_env({}, {"PLAIT_TOKEN": "x"})
