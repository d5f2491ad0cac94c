"""A test command that hangs: it times out, its whole process group is killed, the verdict says
"timed out", and nothing lands that was not tested green."""

from __future__ import annotations

from pathlib import Path

from tests.gitrepo import git
from tests.integration.orchestration_helpers import process_gone
from tests.reliability.fault_helpers import (
    files_on,
    open_harness,
    plan,
    task,
    write,
)


def hangs_if(name: str, pids: Path) -> str:
    """A test command that hangs (with a grandchild) when `name` is in the tree, else passes."""
    return (
        f"if [ -e {name} ]; then sleep 300 & echo $! >> {pids}; echo $$ >> {pids}; wait; fi; true"
    )


async def test_a_hanging_test_command_times_out_and_its_culprit_is_left_out(
    tmp_path: Path,
) -> None:
    async with open_harness(tmp_path) as h:
        pids = h.marker("pids")
        before = git(h.repo, "rev-parse", "main")
        done = await h.run(
            plan(
                task("hang", write("hang.txt", "x")),
                task("fine", write("fine.txt", "x")),
                test_command=hangs_if("hang.txt", pids),
                test_timeout=1,
            )
        )
    failed = done.of_type("TestsFailed")
    assert failed, "the hanging test run was not reported"
    for verdict in failed:
        assert "[plait: the test command timed out after" in verdict["output_tail"]
        assert verdict["exit_code"] is not None
        assert verdict["exit_code"] < 0
    [culprit] = done.of_type("CulpritFound")
    assert culprit["task_id"] == "hang"
    assert "timed out" in culprit["output_tail"]
    for pid in map(int, pids.read_text().split()):
        assert process_gone(pid), f"test process {pid} outlived its timeout"
    # Only what was tested green landed; the culprit's work is kept on its branch.
    assert done.result.status == "landed"
    assert "fine.txt" in files_on(h.repo, "main")
    assert "hang.txt" not in files_on(h.repo, "main")
    assert git(h.repo, "rev-parse", "main") != before
    assert "hang.txt" in files_on(h.repo, f"plait/{done.run_id}/hang")
    [kept] = done.of_type("WorkKept")
    assert kept["task_id"] == "hang"


async def test_a_test_command_that_hangs_on_the_base_stops_the_run_before_any_task(
    tmp_path: Path,
) -> None:
    async with open_harness(tmp_path) as h:
        pids = h.marker("pids")
        done = await h.run(
            plan(
                task("a", write("a.txt", "a")),
                test_command=hangs_if("README.md", pids),
                test_timeout=1,
            )
        )
        await h.service.wait_until_projected()
        status = h.service.read.run_status(done.run_id)
    [baseline] = done.of_type("BaselineTested")
    assert baseline["passed"] is False
    assert "timed out after" in baseline["output_tail"]
    assert done.result.status == "failed"
    assert done.result.error is not None
    assert "the tests already fail on the base commit" in done.result.error
    assert not done.of_type("TaskStarted")
    assert status is not None
    assert status["status"] == "failed"
    for pid in map(int, pids.read_text().split()):
        assert process_gone(pid)
    # Nothing can land on a red base: not even an empty result branch is left behind.
    assert git(h.repo, "branch", "--list", "plait/*", "--format=%(refname)") == ""
