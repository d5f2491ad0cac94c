"""No work a task did is ever lost: issue 14's "Lost work", each case a real run on real git.

Commits a task made stay reachable from a plait ref whatever it did to HEAD; nested
repositories are refused, not half-committed; a failed or interrupted attempt's uncommitted
work is committed to a kept ref; the landing never overwrites the user's files.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from plait.domain.run import task_note
from tests.gitrepo import git
from tests.integration.orchestration_helpers import (
    WORKTREE_MODES,
    Harness,
    files_on,
    of_type,
    open_harness,
    plan,
    task,
    wait_until,
    write,
)


def commit_refs(repo: Path) -> list[str]:
    """Every ref that names a commit (plait keeps other objects under refs/plait/ too)."""
    listed = git(repo, "for-each-ref", "--format=%(objecttype) %(refname)")
    return [line.split(" ", 1)[1] for line in listed.splitlines() if line.startswith("commit ")]


@pytest.fixture(params=WORKTREE_MODES)
async def harness(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Harness]:
    """Each test with fresh task repositories and with pooled ones: the same promises."""
    async with open_harness(tmp_path, reuse_worktrees=request.param == "pooled") as opened:
        yield opened


def reachable_from_plait(repo: Path, commit: str) -> list[str]:
    """The plait refs (task and result branches, kept refs) and main that reach `commit`."""
    listed = git(
        repo, "for-each-ref", "--contains", commit, "--format=%(refname)",
        "refs/plait/", "refs/heads/plait/", "refs/heads/main",
    )  # fmt: skip
    return listed.splitlines()


def commit_of(repo: Path, marker: Path) -> str:
    return marker.read_text().strip()


async def test_a_commit_the_task_made_before_detaching_head_stays_reachable(
    harness: Harness,
) -> None:
    marker = harness.shared / "commit"
    commits_then_detaches = (
        write("work.txt", "committed work")
        + " && git add work.txt && git commit --quiet -m 'my work'"
        + f" && git rev-parse HEAD > {marker} && git checkout --quiet --detach HEAD~1"
    )

    done = await harness.run(plan(task("detacher", commits_then_detaches)))

    commit = commit_of(harness.repo, marker)
    kept = of_type(done.events, "WorkKept")
    assert [k["ref"] for k in kept] == [f"refs/plait/kept/{done.run_id}/detacher/1"]
    assert reachable_from_plait(harness.repo, commit) == [kept[0]["ref"]]
    assert git(harness.repo, "show", f"{commit}:work.txt") == "committed work"


async def test_a_nested_repository_is_refused_with_its_content_kept(harness: Harness) -> None:
    nested = (
        "mkdir sub && cd sub && git init --quiet && echo inner > inner.txt"
        " && git add inner.txt && git -c user.name=t -c user.email=t@t commit --quiet -m in"
    )

    done = await harness.run(plan(task("nests", nested)))

    failed = of_type(done.events, "TaskFailed")
    assert failed
    assert "nested git repository" in failed[0]["error"]
    assert "sub" in failed[0]["error"]
    for ref in commit_refs(harness.repo):
        tree = git(harness.repo, "ls-tree", "-r", ref)
        assert " commit " not in tree, f"{ref} holds a gitlink: {tree}"
    path = Path(of_type(done.events, "WorktreeCreated")[0]["path"])
    assert (path / "sub" / "inner.txt").read_text() == "inner\n"


async def test_the_landing_never_overwrites_an_ignored_file_of_the_users(
    harness: Harness,
) -> None:
    repo = harness.repo
    (repo / ".env").write_text("SECRET=the user's own\n")
    forces_env = write(".env", "from the task") + " && git add -f .env && git commit -qm env"

    done = await harness.run(plan(task("adds-env", forces_env)))

    assert (repo / ".env").read_text() == "SECRET=the user's own\n"
    assert done.result.status == "kept", done.result
    completed = of_type(done.events, "RunCompleted")[0]
    assert ".env" in completed["not_landed_reason"]
    assert completed["land_command"]
    assert ".env" in files_on(repo, f"plait/{done.run_id}/_result")


async def test_a_failed_tasks_uncommitted_work_is_committed_to_a_kept_ref(
    harness: Harness,
) -> None:
    fails = write("half.txt", "half done") + " && exit 3"

    done = await harness.run(plan(task("broken", fails)))

    kept = of_type(done.events, "WorkKept")
    assert kept, [e.type for e in done.events]
    ref = f"refs/plait/kept/{done.run_id}/broken/1"
    assert kept[0]["ref"] == ref
    assert git(harness.repo, "show", f"{ref}:half.txt") == "half done"
    assert kept[0]["commit"] == git(harness.repo, "rev-parse", ref)
    state = harness.service.run_state(done.run_id)
    assert state is not None
    assert ref in task_note(state, state.tasks["broken"])


async def test_an_interrupted_attempts_uncommitted_work_is_committed_to_a_kept_ref(
    harness: Harness,
) -> None:
    never = harness.shared / "never"
    waits = write("draft.txt", "draft") + " && echo ready && " + wait_until(f"test -e {never}")
    run_id = await harness.start(plan(task("slow", waits)))
    await harness.wait_for_event(
        run_id, lambda e: e.type == "TaskOutput" and "ready" in e.data.get("text", "")
    )
    await harness.service.stop_run(await harness.project())

    done = await harness.finish(run_id)

    kept = of_type(done.events, "WorkKept")
    ref = f"refs/plait/kept/{run_id}/slow/1"
    assert [k["ref"] for k in kept] == [ref], [e.type for e in done.events]
    assert git(harness.repo, "show", f"{ref}:draft.txt") == "draft"
