"""The run aggregate's state, folded from the events of one run stream.

The same fold serves the aggregate (replay a whole stream) and projections (load a JSON
snapshot, apply one event, store the snapshot again):

    state = replay(events)                                # aggregate
    state = RunState.from_json_dict(row).apply(event, recorded_at)
    row = state.to_json_dict()                            # projection

`RunState.apply` updates the state in place and returns it: copying a run with thousands
of tasks on every event would make replay quadratic. It is all-or-nothing: every check and
lifecycle lookup runs before the first change, so an event that raises leaves the state as
it was. An event the lifecycles forbid (a task that succeeds before it started, a batch
landed twice, an event for an unknown batch or task, for another run, or after the run
ended) raises InvalidTransition, so replay detects a corrupted history.

Statuses are the words of plait.domain.statuses. Which event fires which trigger is drawn
in plait.domain.lifecycles. Beyond the tables:

- ExecutionModeSelected starts a pending run; on a running run it only records the mode.
- Batch and task progress needs a running (or stopping) run. Worktrees are created and
  tasks started only in a running batch; branches merge or conflict only in a merging
  batch; a culprit is found only in a testing batch.
- TaskFailed with will_retry fires `fail` then `retry`: the task waits (`pending`) for
  its next attempt's worktree.
- BatchLanded lands every task of the batch that is merged on the tip it landed
  (`succeeded` with a merge commit): those are in the run's tested result.
- BatchFailed ends the batch `cancelled` when its merge_status says so, else `failed`.
- RunCompleted ends the run `landed` when the base branch moved to the result, `succeeded`
  when the base already was the result, and `kept` when the result stays on the run's
  branch. Only a landed run has a `landed_commit`; every run has its `result_commit`, the
  tested tip of its result branch.
- RunStopped, RunFailed and RunResumed cancel every batch still in flight (running,
  merging, testing): after a stop or a crash nothing is in flight, and a resumed run
  restarts the batch with a new BatchStarted.
- TaskOutput is accepted in any state and ignored for an older worktree: output chunks may
  be appended after the task's end event, and a history must not become unreplayable
  because of a late log line.
- WorktreeRemoved changes no status; removing the current worktree twice is refused.
  WorkKept ends a conflicted task `kept`; of any other task it only records the branch.

Snapshots of version 1 (the words before plait.domain.statuses) are translated on load.

The package's rooms: entities (batches, tasks, attempts), state (RunState, its views and
snapshots), registry (one fold per event type), fold_run, fold_batch and fold_task (the
handlers, registered by type), moves (the lifecycle lookups) and snapshots.
"""

from __future__ import annotations

from collections.abc import Iterable

# The handlers register themselves with the registry when imported: before any apply.
import plait.domain.run.fold_run
import plait.domain.run.fold_task  # noqa: F401
from plait.domain.events import DomainEvent
from plait.domain.ids import result_branch
from plait.domain.run.entities import (
    OUTPUT_LINE_LIMIT,
    SNAPSHOT_VERSION,
    AttemptState,
    BatchState,
    TaskState,
    TestRunState,
    land_command,
)
from plait.domain.run.fold_batch import FAILURE_TRIGGERS
from plait.domain.run.state import RunState, task_note

Recorded = DomainEvent | tuple[DomainEvent, str | None]


def initial_state() -> RunState:
    return RunState()


def apply(state: RunState, event: DomainEvent, recorded_at: str | None = None) -> RunState:
    return state.apply(event, recorded_at)


def replay(events: Iterable[Recorded]) -> RunState:
    """Fold a whole run stream; items are events or (event, recorded_at) pairs."""
    state = RunState()
    for item in events:
        event, recorded_at = item if isinstance(item, tuple) else (item, None)
        state.apply(event, recorded_at)
    return state


__all__ = [
    "FAILURE_TRIGGERS",
    "OUTPUT_LINE_LIMIT",
    "SNAPSHOT_VERSION",
    "AttemptState",
    "BatchState",
    "Recorded",
    "RunState",
    "TaskState",
    "TestRunState",
    "apply",
    "initial_state",
    "land_command",
    "replay",
    "result_branch",
    "task_note",
]
