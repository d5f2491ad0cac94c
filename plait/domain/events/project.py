"""The events of a project stream: registration, plans, and which run is active."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from plait.domain.events.base import ProjectEvent


@dataclass(frozen=True, kw_only=True)
class ProjectRegistered(ProjectEvent):
    """`common_dir` and `root_commit`: who the repository at `repo_path` is (its git common
    dir and its first commit), checked before every start, resume and landing ("": a
    registration of an older plait, checked for being a repository's root only)."""

    name: str
    repo_path: str
    common_dir: str = ""
    root_commit: str = ""


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
