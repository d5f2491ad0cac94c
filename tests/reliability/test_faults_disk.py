"""The disk full (or the worktree root unusable) when plait creates a task's worktree.

The run fails with git's own reason ("No space left on device") in its status, leaves no
half-made worktree or branch behind, and resumes once there is room.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.gitrepo import git
from tests.reliability.fault_helpers import (
    files_on,
    open_harness,
    plan,
    refs,
    task,
    types_of,
    worktree_paths,
    write,
)


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[Path]:
    """A tiny tmpfs, filled to the last byte. Needs root (CAP_SYS_ADMIN) to mount."""
    root = tmp_path / "small-disk"
    root.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(root)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        with contextlib.suppress(OSError), open(root / "filler", "wb") as filler:
            while True:  # until ENOSPC
                filler.write(b"\0" * 4096)
                filler.flush()
        yield root
    finally:
        subprocess.run(["umount", "--lazy", str(root)], check=True)


async def test_a_full_disk_fails_the_run_cleanly_and_it_resumes_once_there_is_room(
    tmp_path: Path, full_disk: Path
) -> None:
    async with open_harness(tmp_path, worktree_root=full_disk) as h:
        before = git(h.repo, "rev-parse", "main")
        project_id = await h.project()
        failed = await h.run(plan(task("a", write("a.txt", "a")), task("b", write("b.txt", "b"))))
        # The run did not pretend to complete: it failed, saying why, for each task.
        assert failed.result.status == "failed"
        error = failed.result.error or ""
        assert error.count("No space left on device") == 2
        assert "RunCompleted" not in types_of(failed.events)
        [batch] = failed.of_type("BatchFailed")
        assert all("No space left on device" in e for e in batch["errors"])
        await h.service.wait_until_projected()
        status = h.service.read.run_status(failed.run_id)
        assert status is not None
        assert status["status"] == "failed"
        # Nothing half-made is left: no task branch, no worktree; the base is untouched.
        assert git(h.repo, "rev-parse", "main") == before
        assert [r for r in refs(h.repo) if r.startswith("refs/heads/plait/")] == [
            f"refs/heads/plait/{failed.run_id}/_result"
        ]
        assert worktree_paths(h.repo) == [h.repo]
        # Room again: the same run resumes and lands everything.
        (full_disk / "filler").unlink()
        await h.service.resume_run(project_id, failed.run_id)
        done = await h.finish(failed.run_id)
    assert done.result.status == "landed", done.result.error
    assert {"a.txt", "b.txt"} <= files_on(h.repo, "main")


async def test_a_full_disk_fails_a_ready_run_cleanly_and_it_resumes_once_there_is_room(
    tmp_path: Path, full_disk: Path
) -> None:
    async with open_harness(tmp_path, worktree_root=full_disk) as h:
        before = git(h.repo, "rev-parse", "main")
        project_id = await h.project()
        tasks = [task("a", write("a.txt", "a")), task("b", write("b.txt", "b"), "a")]
        failed = await h.run(plan(*tasks, schedule="ready"))
        # With nothing else running the task cannot run at all: the run fails, saying why.
        assert failed.result.status == "failed"
        assert "task 'a': worktree:" in (failed.result.error or "")
        assert "No space left on device" in (failed.result.error or "")
        assert "RunCompleted" not in types_of(failed.events)
        assert git(h.repo, "rev-parse", "main") == before
        assert [r for r in refs(h.repo) if r.startswith("refs/heads/plait/")] == [
            f"refs/heads/plait/{failed.run_id}/_result"
        ]
        assert worktree_paths(h.repo) == [h.repo]
        (full_disk / "filler").unlink()
        await h.service.resume_run(project_id, failed.run_id)
        done = await h.finish(failed.run_id)
    assert done.result.status == "landed", done.result.error
    assert {"a.txt", "b.txt"} <= files_on(h.repo, "main")


async def test_an_unusable_worktree_root_fails_the_run_with_the_reason(tmp_path: Path) -> None:
    """Without root: a worktree root below a plain file (ENOTDIR) takes the same path."""
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    async with open_harness(tmp_path, worktree_root=blocker / "worktrees") as h:
        failed = await h.run(plan(task("a", write("a.txt", "a"))))
    assert failed.result.status == "failed"
    assert "Not a directory" in (failed.result.error or "")
    assert "RunFailed" in types_of(failed.events)
    assert [r for r in refs(h.repo) if r.startswith("refs/heads/plait/")] == [
        f"refs/heads/plait/{failed.run_id}/_result"
    ]
    assert blocker.read_text() == ""


async def test_an_unusable_log_directory_fails_the_run_cleanly_naming_the_path(
    tmp_path: Path,
) -> None:
    """The full task log cannot be written (here: its directory is below a plain file)."""
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    async with open_harness(tmp_path, log_root=blocker / "logs") as h:
        before = git(h.repo, "rev-parse", "main")
        failed = await h.run(plan(task("a", write("a.txt", "a"))))
    assert failed.result.status == "failed"
    assert "Not a directory" in (failed.result.error or "")
    [recorded] = failed.of_type("RunFailed")
    assert str(blocker) in recorded["error"]
    assert git(h.repo, "rev-parse", "main") == before
