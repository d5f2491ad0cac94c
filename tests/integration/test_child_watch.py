"""The loop's children are reaped through pidfds (execution/runners/child_watch.py): exit
statuses arrive as before, no thread waits for a child, another thread's loop keeps its
own watcher, and the previous watcher is back when the loop is done."""

from __future__ import annotations

import asyncio
import sys
import threading

import pytest

from plait.execution.runners import child_watch

pytestmark = pytest.mark.skipif(
    sys.version_info >= (3, 12) or not child_watch.pidfd_available(),
    reason="asyncio uses pidfds itself from 3.12 on; this kernel has none",
)


async def exit_status(code: int) -> int:
    process = await asyncio.create_subprocess_exec(sys.executable, "-c", f"exit({code})")
    return await process.wait()


async def threads_while_children_run() -> tuple[list[int], list[str]]:
    """The exit statuses of three children, and the threads alive while they ran."""
    script = "import sys; sys.exit(int(sys.stdin.read()))"
    children = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-c", script, stdin=asyncio.subprocess.PIPE
        )
        for _ in range(3)
    ]
    during = [t.name for t in threading.enumerate()]
    statuses = [
        (await child.communicate(str(code).encode()), child.returncode)[1]
        for child, code in zip(children, (0, 3, 7), strict=True)
    ]
    return [s for s in statuses if s is not None], during


def test_children_of_the_loop_report_their_exit_status_without_a_waiting_thread() -> None:
    statuses, threads = child_watch.run(threads_while_children_run())
    assert statuses == [0, 3, 7]
    assert [name for name in threads if "waitpid" in name] == []


def test_without_it_a_thread_waits_for_each_child() -> None:
    _, threads = asyncio.run(threads_while_children_run())
    assert len([name for name in threads if "waitpid" in name]) == 3


def test_the_previous_watcher_is_back_once_the_loop_is_done() -> None:
    policy = asyncio.get_event_loop_policy()
    before = policy.get_child_watcher()

    async def installed() -> bool:
        return isinstance(policy.get_child_watcher(), asyncio.PidfdChildWatcher)

    assert child_watch.run(installed())
    assert policy.get_child_watcher() is before
    assert isinstance(before, asyncio.ThreadedChildWatcher)


def test_a_loop_in_another_thread_still_reaps_its_children_meanwhile() -> None:
    other: list[int] = []

    async def both() -> int:
        thread = threading.Thread(target=lambda: other.append(asyncio.run(exit_status(5))))
        thread.start()
        mine = await exit_status(4)
        await asyncio.to_thread(thread.join)
        return mine

    assert child_watch.run(both()) == 4
    assert other == [5]
