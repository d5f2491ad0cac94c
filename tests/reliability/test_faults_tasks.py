"""Faults of a task's own process: it hangs, it crashes, it floods its output.

Each is reported with a clear message in the run's events and status; nothing it left
behind keeps running; no output is lost (the events are bounded, the log on disk is whole).
"""

from __future__ import annotations

from pathlib import Path

from plait.domain.ids import result_branch
from tests.gitrepo import git
from tests.integration.orchestration_helpers import process_gone
from tests.reliability.fault_helpers import (
    PYTHON,
    files_on,
    open_harness,
    plan,
    refs,
    task,
    write,
)


async def test_a_task_that_hangs_times_out_and_its_whole_process_group_is_killed(
    tmp_path: Path,
) -> None:
    async with open_harness(tmp_path) as h:
        pids = h.marker("pids")
        # The task starts a grandchild in the background, records both pids, then hangs.
        hang = f"sleep 300 & echo $! > {pids}.child; echo $$ > {pids}.shell; wait"
        done = await h.run(
            plan(task("stuck", hang), task("fine", write("ok.txt", "ok")), timeout=1)
        )
    failed = done.of_type("TaskFailed")
    assert [f["task_id"] for f in failed] == ["stuck"]
    assert "timed out after" in failed[0]["error"]
    assert failed[0]["exit_code"] is not None
    assert failed[0]["exit_code"] < 0
    for name in ("shell", "child"):
        pid = int(Path(f"{pids}.{name}").read_text())
        assert process_gone(pid), f"the task's {name} process {pid} still runs"
    # The failure reaches the run's end state; the sibling's work landed on the result branch.
    assert done.result.status == "failed"
    assert done.result.error is not None
    assert "stuck" in done.result.error
    assert "timed out" in done.result.error
    assert "ok.txt" in files_on(h.repo, result_branch(done.run_id))
    kept = done.of_type("WorkKept")
    assert [k["task_id"] for k in kept] == ["stuck"]
    assert f"refs/heads/plait/{done.run_id}/stuck" in refs(h.repo)


async def test_a_task_killed_by_a_signal_is_reported_with_the_signal(tmp_path: Path) -> None:
    async with open_harness(tmp_path) as h:
        done = await h.run(
            plan(
                task("segv", "echo about to crash; kill -SEGV $$"),
                task("kill9", "echo dying >&2; kill -9 $$"),
            )
        )
        # The status projection carries the same messages.
        await h.service.wait_until_projected()
        status = h.service.read.run_status(done.run_id)
    failed = {f["task_id"]: f for f in done.of_type("TaskFailed")}
    assert failed["segv"]["exit_code"] == -11
    assert "killed by signal 11" in failed["segv"]["error"]
    assert "about to crash" in failed["segv"]["error"]  # the output tail says what it did
    assert failed["kill9"]["exit_code"] == -9
    assert "killed by signal 9" in failed["kill9"]["error"]
    assert "dying" in failed["kill9"]["error"]
    assert done.result.status == "failed"
    assert status is not None
    assert status["status"] == "failed"
    errors = {t["task_id"]: t["error"] for t in status["tasks"]}
    assert "killed by signal 11" in errors["segv"]
    assert "killed by signal 9" in errors["kill9"]


async def test_megabytes_of_output_give_bounded_events_and_the_whole_log_on_disk(
    tmp_path: Path,
) -> None:
    budget = 64 * 1024
    lines = 400_000  # "line 0000000\n": 13 bytes each, 5.2 MB
    program = (
        "import sys\n"
        f"sys.stdout.writelines('line %07d\\n' % i for i in range({lines}))\n"
        "sys.stdout.flush()\n"
    )
    (tmp_path / "flood.py").write_text(program)
    expected = "".join(f"line {i:07d}\n" for i in range(lines))
    async with open_harness(tmp_path, max_output_event_bytes=budget) as h:
        run = f"{PYTHON} {tmp_path / 'flood.py'} && " + write("flood.txt", "done")
        done = await h.run(plan(task("flood", run)))
        log = h.settings.log_root / done.run_id / "flood.1.log"
    assert done.result.status == "landed", done.result.error
    outputs = done.of_type("TaskOutput")
    text = "".join(o["text"] for o in outputs)
    note = f"[plait: output truncated; the full log is {log}]"
    assert note in text
    assert len(text) <= budget + len(note) + 2
    assert expected.startswith(text[: text.index(note)].rstrip("\n"))
    # Every byte is on disk.
    assert log.read_text() == expected
    assert "flood.txt" in files_on(h.repo, "main")
    assert git(h.repo, "status", "--porcelain") == ""


async def test_a_task_that_exits_0_on_sigterm_after_its_timeout_has_failed(
    tmp_path: Path, store_url: str
) -> None:
    async with open_harness(tmp_path, store_url=store_url) as h:
        # Half its work done, then it hangs; stopped, its handler exits 0 as if all were well.
        half_done = f"{write('half.txt', 'half')}; trap 'exit 0' TERM; sleep 300 & wait"
        done = await h.run(plan(task("slow", half_done), timeout=1))
    assert done.of_type("TaskSucceeded") == []
    [failed] = done.of_type("TaskFailed")
    assert failed["timed_out"] is True
    assert failed["exit_code"] == 0
    assert "timed out after" in failed["error"]
    assert done.result.status == "failed"
    assert "half.txt" not in files_on(h.repo, "main")
    assert "half.txt" not in files_on(h.repo, result_branch(done.run_id))
