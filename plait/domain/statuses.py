"""The words plait uses for the state of a task, a run and a batch: one list each, the only
one. The CLI, the HTTP API, the events and the dashboard all say these words and no others.

MEANING says what each word means to a user; docs/states.md is written from it
(`python -m plait.domain.statuses > docs/states.md`, and a test keeps the two equal). The
transitions between the states are drawn in plait.domain.lifecycles.
"""

from __future__ import annotations

from enum import StrEnum


class TaskStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    RESOLVING = "resolving"
    SUCCEEDED = "succeeded"
    NO_CHANGE = "no_change"
    FAILED = "failed"
    CONFLICTED = "conflicted"
    RERUN = "rerun"
    EJECTED = "ejected"
    LANDED = "landed"
    KEPT = "kept"
    SKIPPED = "skipped"


class RunStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    STOPPING = "stopping"
    LANDED = "landed"
    KEPT = "kept"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    STOPPED = "stopped"


class BatchStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    MERGING = "merging"
    TESTING = "testing"
    LANDED = "landed"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


# What each word means to a user: the one description, which docs/states.md shows.
# (By kind: the kinds share words, and equal StrEnum members are one dict key.)
MEANING: dict[type[StrEnum], dict[StrEnum, str]] = {
    TaskStatus: {
        TaskStatus.PENDING: "waiting to run: for its batch, for a worktree, or for its turn",
        TaskStatus.RUNNING: "its command (or agent) is working in its worktree",
        TaskStatus.RESOLVING: "its agent is resolving a merge conflict with the new tip",
        TaskStatus.SUCCEEDED: "done and committed; waiting to be merged, tested and landed",
        TaskStatus.NO_CHANGE: "exited 0 without changing a file, where the plan wants a change",
        TaskStatus.FAILED: "its command failed (after its retries); its work is kept on its branch",
        TaskStatus.CONFLICTED: "its branch conflicts with the work merged before it",
        TaskStatus.RERUN: "queued to run again on the new tip because of a conflict",
        TaskStatus.EJECTED: "its branch broke the tests (the culprit); kept on its branch",
        TaskStatus.LANDED: "merged and tested: part of the run's result (the base, once it lands)",
        TaskStatus.KEPT: "its conflict persisted after the re-run; kept on its branch, not landed",
        TaskStatus.SKIPPED: "not run: a task it depends on did not land, or a user skipped it",
    },
    RunStatus: {
        RunStatus.PENDING: "created, not started yet",
        RunStatus.RUNNING: "its batches are running",
        RunStatus.STOPPING: "a stop was asked for; its tasks are being stopped",
        RunStatus.LANDED: "finished: the base branch moved to the run's tested result",
        RunStatus.KEPT: (
            "finished, but the result could not land on the base; `plait land` lands it"
        ),
        RunStatus.SUCCEEDED: "finished with nothing to land: the base has all of it already",
        RunStatus.FAILED: "ended by a failure; what was tested is on its result branch",
        RunStatus.STOPPED: "stopped on request or by a crash; resumable",
    },
    BatchStatus: {
        BatchStatus.PENDING: "not started",
        BatchStatus.RUNNING: "its tasks are running",
        BatchStatus.MERGING: "its branches are being merged onto the run's tip",
        BatchStatus.TESTING: "the tests run on the merged commit (or bisect for a culprit)",
        BatchStatus.LANDED: "the tested merge moved the run's result branch",
        BatchStatus.COMPLETED: "every task of it is settled and its green work landed",
        BatchStatus.FAILED: "a task of it failed (its green work landed first)",
        BatchStatus.CANCELLED: "the run stopped while it was in flight; restarted on resume",
    },
}

# Tasks that will not change again unless a user retries them.
SETTLED_TASK = frozenset(
    {
        TaskStatus.LANDED,
        TaskStatus.FAILED,
        TaskStatus.NO_CHANGE,
        TaskStatus.EJECTED,
        TaskStatus.KEPT,
        TaskStatus.SKIPPED,
    }
)
# Tasks whose work did not land and never will in this run (dependents are skipped).
NOT_LANDING_TASK = SETTLED_TASK - {TaskStatus.LANDED}
# A task's own failure (not a conflict or a culprit): `on_task_failure` decides what follows.
TASK_FAILURE = frozenset({TaskStatus.FAILED, TaskStatus.NO_CHANGE})
# Tasks a user may retry or skip on a stopped or failed run.
RETRYABLE_TASK = frozenset(
    {
        TaskStatus.FAILED,
        TaskStatus.NO_CHANGE,
        TaskStatus.EJECTED,
        TaskStatus.KEPT,
        TaskStatus.SKIPPED,
        TaskStatus.CONFLICTED,
    }
)
SKIPPABLE_TASK = frozenset(
    {
        TaskStatus.PENDING,
        TaskStatus.RERUN,
        TaskStatus.FAILED,
        TaskStatus.NO_CHANGE,
        TaskStatus.CONFLICTED,
        TaskStatus.EJECTED,
        TaskStatus.KEPT,
    }
)

ACTIVE_RUN = frozenset({RunStatus.PENDING, RunStatus.RUNNING, RunStatus.STOPPING})
# Runs a process drives; `pending` only between RunCreated and its first event.
DRIVEN_RUN = frozenset({RunStatus.RUNNING, RunStatus.STOPPING})
ENDED_RUN = frozenset(
    {RunStatus.LANDED, RunStatus.KEPT, RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.STOPPED}
)
# Runs that `plait resume`, `retry` and `skip` continue.
RESUMABLE_RUN = frozenset({RunStatus.STOPPED, RunStatus.FAILED})
# Runs whose tested result `plait land` can still land on the base.
LANDABLE_RUN = frozenset({RunStatus.STOPPED, RunStatus.FAILED, RunStatus.KEPT})

IN_FLIGHT_BATCH = frozenset({BatchStatus.RUNNING, BatchStatus.MERGING, BatchStatus.TESTING})


def vocabulary_markdown() -> str:
    """docs/states.md."""
    parts = [
        "# States\n",
        "The words plait uses for tasks, runs and batches: the CLI (`plait status`, `plait "
        "history`, the run summary), the HTTP API (`status` fields), the events and the "
        "dashboard all use these and only these. Written from `plait/domain/statuses.py`; "
        "the transitions between them are drawn in `plait/domain/lifecycles.py`.\n",
    ]
    for title, kind in (("Task", TaskStatus), ("Run", RunStatus), ("Batch", BatchStatus)):
        parts.append(f"\n## {title}\n\n| state | meaning |\n|---|---|")
        parts += [f"| `{member}` | {MEANING[kind][member]} |" for member in kind]
    return "\n".join(parts) + "\n"


if __name__ == "__main__":
    print(vocabulary_markdown(), end="")
