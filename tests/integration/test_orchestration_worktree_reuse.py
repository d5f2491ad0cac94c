"""With `reuse_worktrees`, tasks run in pooled worktrees: reused, isolated, and cleaned up."""

from __future__ import annotations

from pathlib import Path

from tests.gitrepo import git, make_repo
from tests.integration.orchestration_helpers import (
    file_on,
    files_on,
    of_type,
    open_harness,
    plan,
    task,
    worktree_paths,
    write,
)


async def test_later_tasks_reuse_pooled_worktrees_without_seeing_earlier_tasks_files(
    tmp_path: Path,
) -> None:
    # Batch 1 leaves ignored files behind (never committed); batch 2 must not see them.
    first = (
        write("a.txt", "a") + " && echo junk > untracked.tmp && mkdir -p build && echo x > build/o"
    )
    second = 'test ! -e untracked.tmp && test ! -e build/o && test "$(cat a.txt)" = a && ' + write(
        "b.txt", "b"
    )
    async with open_harness(tmp_path, reuse_worktrees=True) as h:
        (h.repo / ".gitignore").write_text("build/\n*.tmp\n")
        git(h.repo, "add", ".gitignore")
        git(h.repo, "commit", "-q", "-m", "ignore build output")
        done = await h.run(plan(task("a", first), task("b", second, "a")))
        assert done.result.status == "landed", done.result.error
        paths = [Path(e["path"]) for e in of_type(done.events, "WorktreeCreated")]
        assert all(p.parent.name == "_pool" for p in paths)
        assert paths[0] == paths[1], "the second task got the first task's pooled worktree back"
        assert file_on(h.repo, "main", "b.txt") == "b"
        assert {"a.txt", "b.txt"} <= files_on(h.repo, "main")
    # Closing the service drains the pool: only the user's checkout is left.
    assert worktree_paths(h.repo) == [h.repo]


async def test_a_kept_pool_serves_the_next_process_and_never_wipes_a_failed_tasks_worktree(
    tmp_path: Path,
) -> None:
    """`plait run` keeps its pool: the next process on the repository reuses the idle slots,
    while the worktree of a task that failed (its half-done files uncommitted) stays exactly
    as it was, through that process's start and its whole run. `plait clean` then removes
    the idle slots and leaves the kept one."""
    from plait.execution.worktrees.cleanup import clean_runs

    repo = make_repo(tmp_path / "repo")
    broken = write("half.txt", "half done") + " && exit 3"
    async with open_harness(tmp_path, repo=repo, reuse_worktrees=True, keep_pool=True) as h:
        first = await h.run(
            plan(task("a", write("a.txt", "a")), task("broken", broken), on_task_failure="land")
        )
        assert first.result.status != "running"
        created = {e["task_id"]: Path(e["path"]) for e in of_type(first.events, "WorktreeCreated")}
    kept = created["broken"]
    idle = created["a"]
    assert (kept / "half.txt").read_text() == "half done\n"
    assert idle in worktree_paths(repo), "the idle slot outlived the process"

    async with open_harness(tmp_path, repo=repo, reuse_worktrees=True, keep_pool=True) as h:
        second = await h.run(plan(task("b", write("b.txt", "b")), task("c", write("c.txt", "c"))))
        assert second.result.status == "landed", second.result.error
        paths = [Path(e["path"]) for e in of_type(second.events, "WorktreeCreated")]
        assert idle in paths, "the next process reused the slot the first one left idle"
        assert kept not in paths, "a failed task's kept worktree was handed to another task"
        assert {"b.txt", "c.txt"} <= files_on(repo, "main")
    assert (kept / "half.txt").read_text() == "half done\n"
    assert git(kept, "status", "--porcelain") == "?? half.txt"

    async with open_harness(tmp_path, repo=repo) as h:
        await h.service.wait_until_projected()
        states = [h.service.read.run_state(r) for r in (first.run_id, second.run_id)]
    report = await clean_runs([s for s in states if s is not None])
    assert any("idle pooled worktree" in line for line in report.removed), report
    assert idle not in worktree_paths(repo)
    assert (kept / "half.txt").read_text() == "half done\n"


async def test_a_wide_batch_leaves_every_one_of_its_worktrees_for_the_next_run(
    tmp_path: Path,
) -> None:
    """A batch holds its worktrees until it lands, so a pool smaller than the batch would
    remove some at the end and make the next run add them again."""
    repo = make_repo(tmp_path / "repo")
    wide = [task(f"t{i}", write(f"t{i}.txt", "x")) for i in range(6)]
    async with open_harness(tmp_path, repo=repo, reuse_worktrees=True, keep_pool=True) as h:
        first = await h.run(plan(*wide, max_concurrency=6))
        assert first.result.status == "landed", first.result.error
    made = {Path(e["path"]) for e in of_type(first.events, "WorktreeCreated")}
    assert len(made) == 6
    assert made <= set(worktree_paths(repo))
    again = [task(f"u{i}", write(f"u{i}.txt", "y")) for i in range(6)]
    async with open_harness(tmp_path, repo=repo, reuse_worktrees=True, keep_pool=True) as h:
        second = await h.run(plan(*again, max_concurrency=6))
        assert second.result.status == "landed", second.result.error
    assert {Path(e["path"]) for e in of_type(second.events, "WorktreeCreated")} == made
