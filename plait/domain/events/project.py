"""The events of a project stream: registration, plans, and which run is active."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from plait.domain.events.base import ProjectEvent


@dataclass(frozen=True, kw_only=True)
class ProjectRegistered(ProjectEvent):
    name: str
    repo_path: str


@dataclass(frozen=True, kw_only=True)
class ProjectDeleted(ProjectEvent):
    """The project is no longer registered. Its runs stay in the history; registering the
    same repository again continues this stream (the id is the repository's)."""

    reason: str = ""


@dataclass(frozen=True, kw_only=True)
class PlanAccepted(ProjectEvent):
    plan: dict[str, Any]
    batches: Sequence[Mapping[str, Any]]
    mode: str
    reason: str = ""
    source: str = ""


@dataclass(frozen=True, kw_only=True)
class RunStarted(ProjectEvent):
    run_id: str


@dataclass(frozen=True, kw_only=True)
class RunEnded(ProjectEvent):
    run_id: str
    outcome: str
