"""Domain events: what happened, in the past tense, as frozen dataclasses.

Two streams carry them (see ARCHITECTURE.md, "Streams and events"):

- the project stream (`project-<id>`): ProjectRegistered, ProjectDeleted, PlanAccepted,
  RunStarted, RunEnded;
- the run stream (`run-<id>`): everything else. Every run-stream event carries `run_id`
  and, where it applies, `batch_id`, `task_id`, `worktree_id` and `attempt`.

Storage sees an event as `(TYPE, SCHEMA_VERSION, data)`; `to_data` and `from_stored`
convert. Stored types are never tied to Python class paths: `TYPE` is a plain name and
the registry maps it back. When a payload changes shape, bump the class's
`SCHEMA_VERSION` and register an upcaster for `(TYPE, old_version)` in `UPCASTERS`;
old rows are upcast on load, never rewritten. A field added with a default is no change of
shape: a stored payload without it loads with the default, so it needs no new version.

Sequence fields accept any sequence and are stored as tuples, so events stay immutable;
`to_data` turns them back into JSON lists.

The package: base (DomainEvent and its errors), project, runs, batches, tasks (the event
classes) and codec (the registry and serialisation).
"""

from __future__ import annotations

from plait.domain.events.base import (
    MAX_TEST_IDS,
    Data,
    DomainEvent,
    EventSchemaError,
    ProjectEvent,
    RunEvent,
    UnknownEventType,
    Upcaster,
)
from plait.domain.events.batches import (
    BatchCompleted,
    BatchFailed,
    BatchLanded,
    BatchStarted,
    BranchMerged,
    CulpritFound,
    FellBackToSequential,
    MergeConflicted,
    MergeStarted,
    TestsFailed,
    TestsFlaky,
    TestsPassed,
)
from plait.domain.events.codec import (
    EVENT_TYPES,
    PROJECT_EVENTS,
    RUN_EVENTS,
    UPCASTERS,
    from_stored,
    to_data,
    upcast,
)
from plait.domain.events.project import (
    PlanAccepted,
    ProjectDeleted,
    ProjectRegistered,
    RunEnded,
    RunStarted,
)
from plait.domain.events.runs import (
    BaselineTested,
    ExecutionModeSelected,
    LandRequested,
    RunCompleted,
    RunCreated,
    RunFailed,
    RunResumed,
    RunStopped,
    StopRequested,
)
from plait.domain.events.tasks import (
    AgentReported,
    ConflictResolutionFailed,
    ConflictResolutionStarted,
    ConflictResolved,
    TaskChangedNothing,
    TaskFailed,
    TaskInterrupted,
    TaskOutput,
    TaskRequeued,
    TaskSkipped,
    TaskStarted,
    TaskSucceeded,
    WorkKept,
    WorktreeCreated,
    WorktreeRemoved,
)

__all__ = [
    "EVENT_TYPES",
    "MAX_TEST_IDS",
    "PROJECT_EVENTS",
    "RUN_EVENTS",
    "UPCASTERS",
    "AgentReported",
    "BaselineTested",
    "BatchCompleted",
    "BatchFailed",
    "BatchLanded",
    "BatchStarted",
    "BranchMerged",
    "ConflictResolutionFailed",
    "ConflictResolutionStarted",
    "ConflictResolved",
    "CulpritFound",
    "Data",
    "DomainEvent",
    "EventSchemaError",
    "ExecutionModeSelected",
    "FellBackToSequential",
    "LandRequested",
    "MergeConflicted",
    "MergeStarted",
    "PlanAccepted",
    "ProjectDeleted",
    "ProjectEvent",
    "ProjectRegistered",
    "RunCompleted",
    "RunCreated",
    "RunEnded",
    "RunEvent",
    "RunFailed",
    "RunResumed",
    "RunStarted",
    "RunStopped",
    "StopRequested",
    "TaskChangedNothing",
    "TaskFailed",
    "TaskInterrupted",
    "TaskOutput",
    "TaskRequeued",
    "TaskSkipped",
    "TaskStarted",
    "TaskSucceeded",
    "TestsFailed",
    "TestsFlaky",
    "TestsPassed",
    "UnknownEventType",
    "Upcaster",
    "WorkKept",
    "WorktreeCreated",
    "WorktreeRemoved",
    "from_stored",
    "to_data",
    "upcast",
]
