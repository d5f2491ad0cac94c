"""Projects as the service sees them: ids, the folded project stream, repository paths."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from plait.domain.events import PlanAccepted, ProjectRegistered, RunEnded, RunStarted
from plait.eventstore import StoredEvent
from plait.execution.errors import InvalidId, NotARepository
from plait.execution.git import Git, GitError
from plait.execution.worktrees import InvalidIdError, validate_id
from plait.projections.codec import decode


def new_id() -> str:
    return uuid.uuid4().hex[:12]


def checked_id(kind: str, value: str) -> str:
    try:
        return validate_id(kind, value)
    except InvalidIdError as exc:
        raise InvalidId(str(exc)) from None


@dataclass
class ProjectFacts:
    """What the project stream says, folded."""

    project_id: str
    version: int
    repo_path: str
    plan: dict[str, Any] | None
    active_run: str | None
    last_run: str | None


def fold_project(project_id: str, events: list[StoredEvent]) -> ProjectFacts:
    facts = ProjectFacts(project_id, events[-1].stream_version, "", None, None, None)
    for stored in events:
        event = decode(stored)
        if isinstance(event, ProjectRegistered):
            facts.repo_path = event.repo_path
        elif isinstance(event, PlanAccepted):
            facts.plan = {"plan": event.plan, "mode": event.mode, "reason": event.reason}
        elif isinstance(event, RunStarted):
            facts.active_run = facts.last_run = event.run_id
        elif isinstance(event, RunEnded) and facts.active_run == event.run_id:
            facts.active_run = None
    return facts


def storable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "\x00" not in text


async def repository_root(path: str) -> Path:
    if not path or "\x00" in path or len(path) > 4096:
        raise NotARepository(f"not a usable path: {path!r}")
    # repr(): a path is the caller's text, and may hold a newline or a control character.
    try:
        candidate = Path(path).expanduser().resolve(strict=True)
    except (OSError, RuntimeError, ValueError) as exc:  # missing, a symlink loop, not encodable
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise NotARepository(f"{path!r}: {reason}") from None
    if not candidate.is_dir():
        raise NotARepository(f"{path!r} is not a directory")
    git = Git(candidate)
    try:
        top = await git.toplevel()
    except GitError:
        raise NotARepository(f"{path!r} is not inside a git repository") from None
    return top.resolve()
