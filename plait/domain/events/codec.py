"""The registry of event types, and their serialisation."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

from plait.domain.events.base import (
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

PROJECT_EVENTS: tuple[type[ProjectEvent], ...] = (
    ProjectRegistered,
    ProjectDeleted,
    PlanAccepted,
    RunStarted,
    RunEnded,
)


RUN_EVENTS: tuple[type[RunEvent], ...] = (
    RunCreated,
    ExecutionModeSelected,
    BaselineTested,
    BatchStarted,
    WorktreeCreated,
    TaskStarted,
    TaskOutput,
    AgentReported,
    TaskSucceeded,
    TaskChangedNothing,
    TaskFailed,
    TaskInterrupted,
    MergeStarted,
    BranchMerged,
    MergeConflicted,
    ConflictResolutionStarted,
    ConflictResolved,
    ConflictResolutionFailed,
    TestsPassed,
    TestsFailed,
    TestsFlaky,
    CulpritFound,
    BatchLanded,
    BatchCompleted,
    BatchFailed,
    FellBackToSequential,
    TaskRequeued,
    TaskSkipped,
    WorktreeRemoved,
    WorkKept,
    StopRequested,
    RunCompleted,
    RunFailed,
    RunStopped,
    RunResumed,
    LandRequested,
)


def _registry(classes: Iterable[type[DomainEvent]]) -> dict[str, type[DomainEvent]]:
    registry: dict[str, type[DomainEvent]] = {}
    for cls in classes:
        if cls.TYPE in registry:
            raise RuntimeError(f"event type {cls.TYPE!r} registered twice")
        registry[cls.TYPE] = cls
    return registry


EVENT_TYPES: Mapping[str, type[DomainEvent]] = _registry((*PROJECT_EVENTS, *RUN_EVENTS))


# (TYPE, from_version) -> function turning a `from_version` payload into `from_version + 1`.
UPCASTERS: dict[tuple[str, int], Upcaster] = {}


def to_data(event: DomainEvent) -> Data:
    """The event's payload as JSON-safe data (tuples become lists); TYPE is not included."""
    return {spec.name: _jsonable(getattr(event, spec.name)) for spec in dataclasses.fields(event)}


def from_stored(type: str, schema_version: int, data: Mapping[str, Any]) -> DomainEvent:
    """Rebuild an event from its stored type, schema version and payload.

    Older payloads are upcast first. Keys the class does not know are ignored (a newer
    writer may add fields); missing fields that have defaults take them.
    """
    cls = EVENT_TYPES.get(type)
    if cls is None:
        raise UnknownEventType(type)
    payload = upcast(type, schema_version, data, cls.SCHEMA_VERSION)
    known = {spec.name for spec in dataclasses.fields(cls)}
    try:
        return cls(**{key: value for key, value in payload.items() if key in known})
    except TypeError as error:
        raise EventSchemaError(f"cannot load {type} v{schema_version}: {error}") from error


def upcast(type_name: str, from_version: int, data: Mapping[str, Any], to_version: int) -> Data:
    """Apply the registered upcasters one version at a time up to `to_version`."""
    if from_version > to_version:
        raise EventSchemaError(
            f"{type_name} v{from_version} is newer than this code's v{to_version}"
        )
    payload = dict(data)
    for version in range(from_version, to_version):
        upcaster = UPCASTERS.get((type_name, version))
        if upcaster is None:
            raise EventSchemaError(f"no upcaster for {type_name} v{version} -> v{version + 1}")
        payload = upcaster(payload)
    return payload


def _jsonable(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    if isinstance(value, Mapping):
        return {str(key): _jsonable(item) for key, item in value.items()}
    return value
