"""Stream names: one stream per project (`project-<id>`) and one per run (`run-<id>`)."""

from __future__ import annotations

from plait.domain.events import DomainEvent, ProjectEvent, RunEvent
from plait.eventstore.records import StoredEvent

PROJECT_PREFIX = "project-"
RUN_PREFIX = "run-"


def project_stream(project_id: str) -> str:
    return f"{PROJECT_PREFIX}{project_id}"


def run_stream(run_id: str) -> str:
    return f"{RUN_PREFIX}{run_id}"


def stream_of(event: DomainEvent) -> str:
    if isinstance(event, RunEvent):
        return run_stream(event.run_id)
    if isinstance(event, ProjectEvent):
        return project_stream(event.project_id)
    raise TypeError(f"{event.TYPE} belongs to no stream")


def run_id_of(stored: StoredEvent) -> str | None:
    if stored.stream_id.startswith(RUN_PREFIX):
        return stored.stream_id[len(RUN_PREFIX) :]
    return None


def project_id_of(stored: StoredEvent) -> str | None:
    if stored.stream_id.startswith(PROJECT_PREFIX):
        return stored.stream_id[len(PROJECT_PREFIX) :]
    return None
