"""Realistic event histories for projection tests and benchmarks."""

from __future__ import annotations

from collections.abc import Sequence

from plait.domain.events import (
    BatchCompleted,
    BatchLanded,
    BatchStarted,
    BranchMerged,
    DomainEvent,
    ExecutionModeSelected,
    MergeStarted,
    PlanAccepted,
    ProjectRegistered,
    RunCompleted,
    RunCreated,
    RunEnded,
    RunStarted,
    TaskOutput,
    TaskStarted,
    TaskSucceeded,
    TestsPassed,
    WorktreeCreated,
    WorktreeRemoved,
)


def registered(project_id: str, batches: Sequence[Sequence[str]]) -> list[DomainEvent]:
    described = [
        {"batch_id": i, "task_ids": list(b), "can_parallel": len(b) > 1}
        for i, b in enumerate(batches, start=1)
    ]
    return [
        ProjectRegistered(project_id=project_id, name=project_id, repo_path=f"/repos/{project_id}"),
        PlanAccepted(
            project_id=project_id,
            plan={"tasks": [{"id": t, "run": "true"} for b in batches for t in b]},
            batches=described,
            mode="parallel",
            reason="batch 1 runs tasks in parallel",
            source="test",
        ),
    ]


def run_events(
    project_id: str, run_id: str, batches: Sequence[Sequence[str]], outputs: int = 2
) -> list[DomainEvent]:
    """A run that lands every batch: what a successful `plait run` records."""
    events: list[DomainEvent] = [
        RunCreated(
            run_id=run_id,
            project_id=project_id,
            plan={"tasks": [{"id": t, "run": "true"} for b in batches for t in b]},
            batches=[
                {"batch_id": i, "task_ids": list(b), "can_parallel": len(b) > 1}
                for i, b in enumerate(batches, start=1)
            ],
            base_branch="main",
            base_commit="c0",
            repo_path=f"/repos/{project_id}",
        ),
        ExecutionModeSelected(run_id=run_id, mode="parallel", reason="batch 1 is parallel"),
    ]
    tip = "c0"
    for batch_id, tasks in enumerate(batches, start=1):
        events.append(
            BatchStarted(
                run_id=run_id, batch_id=batch_id, task_ids=tasks, can_parallel=len(tasks) > 1
            )
        )
        for task in tasks:
            events += _task(run_id, batch_id, task, outputs)
        events.append(MergeStarted(run_id=run_id, batch_id=batch_id, onto=tip))
        for task in tasks:
            merged = f"m-{run_id}-{task}"
            events.append(
                BranchMerged(
                    run_id=run_id,
                    batch_id=batch_id,
                    task_id=task,
                    worktree_id=f"wt-{task}",
                    merge_commit=merged,
                )
            )
        after = f"m-{run_id}-{tasks[-1]}"
        events += [
            TestsPassed(
                run_id=run_id,
                batch_id=batch_id,
                commit=after,
                command="pytest",
                exit_code=0,
                duration=0.5,
            ),
            BatchLanded(run_id=run_id, batch_id=batch_id, before=tip, after=after),
            BatchCompleted(run_id=run_id, batch_id=batch_id, merge_status="success", duration=1),
        ]
        events += [WorktreeRemoved(run_id=run_id, task_id=t, worktree_id=f"wt-{t}") for t in tasks]
        tip = after
    events.append(RunCompleted(run_id=run_id, landed_commit=tip, landed_on="main"))
    return events


def _task(run_id: str, batch_id: int, task: str, outputs: int) -> list[DomainEvent]:
    wt = f"wt-{task}"
    return [
        WorktreeCreated(
            run_id=run_id,
            batch_id=batch_id,
            task_id=task,
            worktree_id=wt,
            attempt=1,
            path=f"/wt/{task}",
            branch=f"plait/{run_id}/{task}",
            base_commit="c0",
        ),
        TaskStarted(
            run_id=run_id,
            batch_id=batch_id,
            task_id=task,
            worktree_id=wt,
            attempt=1,
            command=["sh", "-c", f"make {task}"],
        ),
        *(
            TaskOutput(
                run_id=run_id,
                batch_id=batch_id,
                task_id=task,
                worktree_id=wt,
                attempt=1,
                stream="stdout",
                text=f"{task} line {i}\n",
            )
            for i in range(outputs)
        ),
        TaskSucceeded(
            run_id=run_id,
            batch_id=batch_id,
            task_id=task,
            worktree_id=wt,
            attempt=1,
            commit=f"c-{task}",
            changed_files=[f"{task}.py"],
        ),
    ]


def project_run_start(project_id: str, run_id: str) -> RunStarted:
    return RunStarted(project_id=project_id, run_id=run_id)


def project_run_end(project_id: str, run_id: str) -> RunEnded:
    return RunEnded(project_id=project_id, run_id=run_id, outcome="landed")
