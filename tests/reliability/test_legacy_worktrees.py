"""A run that an older plait left with its worktrees inside `.git/plait-worktrees` (before
they moved out of the repository) is recovered there, finished, and cleaned up."""

from __future__ import annotations

from pathlib import Path

from plait.domain.events import (
    BatchStarted,
    ExecutionModeSelected,
    RunCreated,
    RunStarted,
    TaskStarted,
    WorktreeCreated,
)
from plait.domain.plan.parsing import plan_from_mapping
from plait.eventstore import SqlEventStore
from plait.execution.service import Plait
from plait.execution.settings import Settings
from plait.projections.codec import encode, project_stream, run_stream
from tests.gitrepo import git, make_repo


async def test_a_run_with_worktrees_in_the_git_dir_resumes_there_and_leaves_nothing_behind(
    tmp_path: Path, store_url: str
) -> None:
    repo = make_repo(tmp_path / "repo")
    head = git(repo, "rev-parse", "HEAD")
    store = SqlEventStore(store_url)
    first = Plait(store, Settings(log_root=tmp_path / "logs"))
    project = await first.register_project(str(repo))
    plan = plan_from_mapping({"retries": 0, "tasks": [{"id": "a", "run": "echo a > a.txt"}]})
    await first.submit_plan(project, plan)
    await first.close()

    # What an older plait recorded before it was killed: no worktree root in RunCreated,
    # and the task's worktree where it used to go.
    run_id = "legacy000001"
    legacy = repo / ".git" / "plait-worktrees" / run_id / "a.1"
    git(repo, "worktree", "add", "--quiet", "-b", f"plait/{run_id}/a", str(legacy), head)
    worktree_id = f"{run_id}/a.1"
    version = store.stream_version(project_stream(project))
    store.append(
        project_stream(project), [encode(RunStarted(project_id=project, run_id=run_id))], version
    )
    events = [
        RunCreated(
            run_id=run_id,
            project_id=project,
            plan=plan.to_dict(),
            batches=[{"batch_id": 1, "task_ids": ["a"], "can_parallel": False}],
            base_branch="main",
            base_commit=head,
            repo_path=str(repo.resolve()),
        ),
        ExecutionModeSelected(run_id=run_id, mode="sequential", reason="one task"),
        BatchStarted(run_id=run_id, batch_id=1, task_ids=["a"], can_parallel=False),
        WorktreeCreated(
            run_id=run_id,
            batch_id=1,
            task_id="a",
            worktree_id=worktree_id,
            attempt=1,
            path=str(legacy),
            branch=f"plait/{run_id}/a",
            base_commit=head,
        ),
        TaskStarted(
            run_id=run_id,
            batch_id=1,
            task_id="a",
            worktree_id=worktree_id,
            attempt=1,
            command=["/bin/sh", "-c", "echo a > a.txt"],
        ),
    ]
    store.append(run_stream(run_id), [encode(e) for e in events], 0)

    service = Plait(store, Settings(log_root=tmp_path / "logs"))
    try:
        assert await service.start() == [run_id]
        result = await service.wait_run(run_id)
    finally:
        await service.close()
        store.close()

    assert result.status == "landed", result.error
    assert git(repo, "show", "main:a.txt") == "a"
    assert git(repo, "worktree", "list", "--porcelain").count("worktree ") == 1
    assert not legacy.exists()
