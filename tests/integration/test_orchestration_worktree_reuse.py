"""With `reuse_worktrees`, tasks run in pooled worktrees: reused, isolated, and cleaned up."""

from __future__ import annotations

from pathlib import Path

from tests.gitrepo import git
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
