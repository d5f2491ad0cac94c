"""A test command that hangs: it times out, its whole process group is killed, the verdict says
"timed out", and nothing lands that was not tested green."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.gitrepo import commit_file, git
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


async def test_a_test_command_that_exits_0_on_sigterm_after_its_timeout_has_failed(
    tmp_path: Path, store_url: str
) -> None:
    # Green unless culprit.txt is in the tree; then it hangs, and exits 0 when stopped.
    tests = "if [ -e culprit.txt ]; then trap 'exit 0' TERM; sleep 300 & wait; fi"
    async with open_harness(tmp_path, store_url=store_url) as h:
        done = await h.run(
            plan(
                task("culprit", write("culprit.txt", "x")),
                task("fine", write("fine.txt", "x")),
                test_command=tests,
                test_timeout=1,
            )
        )
    assert done.result.status == "landed", done.result.error
    timed_out = [f for f in done.of_type("TestsFailed") if f["timed_out"]]
    assert timed_out, "the timed-out test run was not recorded as a failure"
    assert {f["exit_code"] for f in timed_out} == {0}
    [culprit] = done.of_type("CulpritFound")
    assert culprit["task_id"] == "culprit"
    assert "fine.txt" in files_on(h.repo, "main")
    assert "culprit.txt" not in files_on(h.repo, "main")
    for passed in done.of_type("TestsPassed"):
        assert "culprit.txt" not in files_on(h.repo, passed["commit"])


@pytest.mark.parametrize("allow_red_base", [False, True], ids=["red-base-refused", "allowed"])
async def test_a_test_command_that_does_not_exist_refuses_the_run_before_any_task(
    tmp_path: Path, store_url: str, allow_red_base: bool
) -> None:
    async with open_harness(tmp_path, store_url=store_url) as h:
        before = git(h.repo, "rev-parse", "main")
        done = await h.run(
            plan(
                task("a", write("a.txt", "a")),
                test_command="no-such-test-runner --all",
                allow_red_base=allow_red_base,
            )
        )
    assert done.result.status == "failed"
    error = done.result.error or ""
    assert "the test command could not run (exit 127: not found)" in error
    assert "no-such-test-runner" in error
    assert "allow_red_base" not in error  # it is no red base, and allowing one would not help
    [baseline] = done.of_type("BaselineTested")
    assert baseline["allowed"] is False
    assert "could not run" in baseline["problem"]
    assert done.of_type("TaskStarted") == []
    assert git(h.repo, "rev-parse", "main") == before
    assert git(h.repo, "branch", "--list", "plait/*") == ""


async def test_a_test_command_that_is_not_executable_refuses_the_run(
    tmp_path: Path, store_url: str
) -> None:
    async with open_harness(tmp_path, store_url=store_url) as h:
        commit_file(h.repo, "run-tests", "#!/bin/sh\nexit 0\n")  # committed without +x
        done = await h.run(
            plan(task("a", write("a.txt", "a")), test_command="./run-tests", allow_red_base=True)
        )
    assert done.result.status == "failed"
    assert "could not run (exit 126: not executable)" in (done.result.error or "")
    assert done.of_type("TaskStarted") == []


@pytest.mark.parametrize("field", ["setup_command", "test_setup_command"])
async def test_a_setup_that_fails_on_the_base_refuses_the_run(
    tmp_path: Path, store_url: str, field: str
) -> None:
    async with open_harness(tmp_path, store_url=store_url) as h:
        done = await h.run(
            plan(
                task("a", write("a.txt", "a")),
                test_command="true",
                allow_red_base=True,
                **{field: "echo 'no lockfile here' >&2; exit 3"},
            )
        )
    assert done.result.status == "failed"
    error = done.result.error or ""
    assert f"{field} failed in the integration worktree (exit status 3)" in error
    assert "no lockfile here" in error
    assert done.of_type("TaskStarted") == []


async def test_a_test_command_that_leaves_a_setsid_daemon_holding_its_output_returns_its_verdict(
    tmp_path: Path,
) -> None:
    # The test command passes at once, but leaves a daemon (a new session and group) that
    # keeps the command's stdout open for five minutes: the verdict must not wait for it.
    async with open_harness(tmp_path) as h:
        pids = h.marker("daemon")
        script = h.marker("daemon.py")
        script.write_text(
            "import os, sys, time\n"
            "os.setsid()\n"
            "print(os.getpid(), flush=True)\n"
            "with open(sys.argv[1], 'a') as out: out.write(f'{os.getpid()}\\n')\n"
            "time.sleep(300)\n"
        )
        # The command returns once the daemon is up (bounded: 400 x 0.05 s).
        daemon = (
            f"python3 {script} {pids} & i=0; while [ ! -s {pids} ] && [ $i -lt 400 ];"
            " do sleep 0.05; i=$((i+1)); done;"
        )
        done = await h.run(plan(task("a", write("a.txt", "x")), test_command=f"{daemon} true"))
    assert done.result.status == "landed", done.result.error
    assert "a.txt" in files_on(h.repo, "main")
    daemons = list(map(int, pids.read_text().split()))
    assert daemons, "the test command's daemon never started"
    for pid in daemons:
        assert process_gone(pid), f"the test command's daemon {pid} outlived it"
