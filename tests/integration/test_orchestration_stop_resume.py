"""Stopping a run kills each task's whole process tree; resuming finishes it, landing every
task exactly once."""

from __future__ import annotations

import shlex
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from plait.eventstore import StoredEvent
from plait.execution.service import RunAlreadyActive
from tests.gitrepo import git
from tests.integration.orchestration_helpers import (
    PYTHON,
    Harness,
    file_on,
    merged_count,
    of_type,
    open_harness,
    plait_branches,
    plan,
    process_gone,
    task,
    types_of,
    wait_until,
    write,
)


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    async with open_harness(tmp_path, stop_grace=0.5) as opened:
        yield opened


# A grandchild that ignores SIGTERM: only a SIGKILL to the whole group ends it.
STUBBORN = (
    "import os, signal, sys, time\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "open(sys.argv[1], 'w').write(str(os.getpid()))\n"
    "time.sleep(600)\n"
)


def stubborn_the_first_time(shared: Path) -> str:
    """First run: start the stubborn grandchild, say `ready` once its pid is known, and wait
    for it forever. Any later run (the resumed one): do the work at once."""
    pids = shlex.quote(str(shared))
    return (
        f"if [ -e {pids}/ran-once ]; then {write('slow.txt', 'slow')}; exit 0; fi; "
        f"touch {pids}/ran-once; echo $$ > {pids}/child.pid; "
        f"{PYTHON} -c {shlex.quote(STUBBORN)} {pids}/grandchild.pid & "
        + wait_until(f"[ -s {pids}/grandchild.pid ]")
        + "; echo ready; wait"
    )


def says_ready(event: StoredEvent) -> bool:
    return event.type == "TaskOutput" and "ready" in event.data["text"]


async def test_stop_kills_the_whole_process_tree_and_resume_lands_each_task_once(
    harness: Harness,
) -> None:
    the_plan = plan(
        task("quick", write("quick.txt", "quick")),
        task("slow", stubborn_the_first_time(harness.shared)),
        task("after", "cat quick.txt slow.txt > after.txt", "quick", "slow"),
        test_command="true",
    )
    run_id = await harness.start(the_plan)
    await harness.wait_for_event(run_id, says_ready)
    child = int((harness.shared / "child.pid").read_text())
    grandchild = int((harness.shared / "grandchild.pid").read_text())

    project_id = await harness.project()
    assert await harness.service.stop_run(project_id) == run_id
    stopped = await harness.finish(run_id)

    assert stopped.result.status == "stopped"
    assert process_gone(child)
    assert process_gone(grandchild)
    assert types_of(stopped.events)[-1] == "RunStopped"
    assert "StopRequested" in types_of(stopped.events)
    assert [i["task_id"] for i in of_type(stopped.events, "TaskInterrupted")] == ["slow"]
    assert "BatchStarted" not in [e.type for e in stopped.events if e.data.get("batch_id") == 2]

    assert await harness.service.resume_run(project_id, run_id) == run_id
    resumed = await harness.finish(run_id)

    assert resumed.result.status == "landed", resumed.result.error
    assert "RunResumed" in types_of(resumed.events)
    assert merged_count(resumed.events) == {"quick": 1, "slow": 1, "after": 1}
    assert file_on(harness.repo, "main", "after.txt") == "quick\nslow"
    merges = git(harness.repo, "log", "--format=%s", "main").splitlines()
    assert sorted(m for m in merges if m.startswith("plait: merge task")) == [
        "plait: merge task after",
        "plait: merge task quick",
        "plait: merge task slow",
    ]
    assert plait_branches(harness.repo) == []


async def test_a_stopped_run_cannot_be_resumed_twice_at_once(harness: Harness) -> None:
    run_id = await harness.start(plan(task("slow", stubborn_the_first_time(harness.shared))))
    await harness.wait_for_event(run_id, says_ready)
    project_id = await harness.project()
    await harness.service.stop_run(project_id)
    await harness.finish(run_id)

    await harness.service.resume_run(project_id, run_id)
    with pytest.raises(RunAlreadyActive, match="running in this process"):
        await harness.service.resume_run(project_id, run_id)
    resumed = await harness.finish(run_id)

    assert resumed.result.status == "landed", resumed.result.error
    assert merged_count(resumed.events) == {"slow": 1}
