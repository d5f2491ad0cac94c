"""`sandbox: bwrap`: a task writes only its own directory, and with `sandbox_network: false`
reaches no network. Issue 14's "A task can write anywhere the user can", with the real
bubblewrap (/usr/bin/bwrap, installed by .ci/run); each refusal next to the same task run
without the sandbox, which does the damage.
"""

from __future__ import annotations

import asyncio
import shlex
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from plait.domain.errors import PlanError
from plait.domain.plan.parsing import plan_from_mapping
from plait.execution.errors import SandboxUnavailable
from plait.execution.runners import sandbox
from tests.integration.orchestration_helpers import (
    Harness,
    files_on,
    of_type,
    open_harness,
    plan,
    task,
    write,
)

pytestmark = pytest.mark.skipif(
    not Path(sandbox.BWRAP).exists(), reason="bubblewrap is not installed (.ci/run installs it)"
)


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    async with open_harness(tmp_path) as opened:
        yield opened


def sandboxed(*tasks: dict[str, Any], **settings: Any) -> dict[str, Any]:
    return plan(*tasks, sandbox="bwrap", **settings)


@pytest.mark.parametrize("confined", [False, True])
async def test_a_task_that_writes_up_out_of_its_directory_is_refused_in_the_sandbox(
    harness: Harness, confined: bool
) -> None:
    # The worktree is <root>/<repo key>/<run>/<task>.1: ../../ is the repository's own root.
    # (Below /tmp, as here, the sandbox's directories above it are its private tmpfs; below
    # $HOME they are read-only and the write fails.)
    escapes = "echo escaped > ../../escaped.txt; " + write("work.txt", "w")
    chosen = sandboxed if confined else plan

    done = await harness.run(chosen(task("climber", escapes)))

    worktree = Path(of_type(done.events, "WorktreeCreated")[0]["path"])
    assert (worktree.parent.parent / "escaped.txt").exists() is not confined
    assert done.result.status == "landed", done.result


@pytest.mark.parametrize("confined", [False, True])
async def test_a_task_that_writes_into_the_users_checkout_by_absolute_path_is_refused(
    harness: Harness, confined: bool
) -> None:
    target = harness.repo / "src" / "app.txt"
    before = target.read_text()
    vandal = f"echo vandalised > {shlex.quote(str(target))}; touch {harness.repo}/new.txt"
    chosen = sandboxed if confined else plan

    await harness.run(chosen(task("vandal", vandal + " && " + write("w.txt", "w"))))

    assert (target.read_text() == before) is confined
    assert (harness.repo / "new.txt").exists() is not confined


async def test_the_sandbox_leaves_the_task_its_own_directory_git_and_tmp(
    harness: Harness,
) -> None:
    works = (
        "echo scratch > /tmp/scratch.txt && cat /tmp/scratch.txt > from-tmp.txt"
        " && git add from-tmp.txt && git commit --quiet -m 'in the sandbox'"
    )

    done = await harness.run(sandboxed(task("inside", works)))

    assert done.result.status == "landed", done.result
    assert "from-tmp.txt" in files_on(harness.repo, "main")


async def listening() -> tuple[asyncio.Server, int, list[bytes]]:
    heard: list[bytes] = []

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        heard.append(await reader.read(100))
        writer.close()

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, port, heard


@pytest.mark.parametrize("network", [True, False])
async def test_with_the_network_off_a_task_cannot_reach_a_server_on_the_host(
    harness: Harness, network: bool
) -> None:
    server, port, heard = await listening()
    calls = (
        'python3 -c \'import socket; s = socket.create_connection(("127.0.0.1", '
        f'{port}), 5); s.sendall(b"leak"); s.close()\' && ' + write("w.txt", "w")
    )
    async with server:
        done = await harness.run(sandboxed(task("caller", calls), sandbox_network=network))

    assert (heard == [b"leak"]) is network
    if not network:
        failed = of_type(done.events, "TaskFailed")
        assert failed
        assert "refused" in failed[0]["error"] or "unreachable" in failed[0]["error"]


async def test_a_missing_bubblewrap_is_refused_before_the_run_starts(
    harness: Harness, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    real = sandbox.check_bwrap
    monkeypatch.setattr(
        "plait.execution.service.check_bwrap", lambda: real(str(tmp_path / "no-bwrap"))
    )
    with pytest.raises(SandboxUnavailable, match="install bubblewrap"):
        await harness.start(sandboxed(task("t", write("t.txt", "t"))))


def test_sandbox_fields_are_checked_in_the_plan() -> None:
    with pytest.raises(PlanError, match="'sandbox' must be 'bwrap', got 'docker'"):
        plan_from_mapping(plan(task("t", "true"), sandbox="docker"))
    with pytest.raises(PlanError, match="needs a sandbox"):
        plan_from_mapping(plan(task("t", "true"), sandbox_network=False))
    read = plan_from_mapping(sandboxed(task("t", "true"), sandbox_network=False))
    assert (str(read.sandbox), read.sandbox_network) == ("bwrap", False)
    assert plan_from_mapping(read.to_dict()) == read
