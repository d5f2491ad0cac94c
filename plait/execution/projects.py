"""Projects as the service sees them: ids, the folded project stream, repository paths."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from plait.domain.events import (
    PlanAccepted,
    ProjectDeleted,
    ProjectRegistered,
    RunEnded,
    RunStarted,
)
from plait.domain.ids import InvalidIdError, validate_id
from plait.eventstore import StoredEvent
from plait.eventstore.codec import decode
from plait.execution.errors import InvalidId, NotARepository, RepositoryChanged
from plait.execution.git.cli import Git, GitError


def new_id() -> str:
    return uuid.uuid4().hex[:12]


def project_id_for(repo: Path) -> str:
    """A repository's project id: derived from its path, so that two registrations of one
    repository append to one stream and the store, not a lookup, keeps them one project."""
    return hashlib.sha256(str(repo).encode()).hexdigest()[:12]


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
    deleted: bool = False
    common_dir: str = ""
    root_commit: str = ""


def fold_project(project_id: str, events: list[StoredEvent]) -> ProjectFacts:
    facts = ProjectFacts(project_id, events[-1].stream_version, "", None, None, None)
    for stored in events:
        event = decode(stored)
        if isinstance(event, ProjectRegistered):
            facts.repo_path, facts.deleted, facts.plan = event.repo_path, False, None
            facts.common_dir, facts.root_commit = event.common_dir, event.root_commit
        elif isinstance(event, ProjectDeleted):
            facts.deleted = True
        elif isinstance(event, PlanAccepted):
            facts.plan = {
                "plan": event.plan,
                "batches": event.batches,
                "mode": event.mode,
                "reason": event.reason,
            }
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
        if await _is_bare(git):
            raise NotARepository(
                f"{path!r} is a bare repository: plait needs a working tree to land on"
                " (register a clone with a checkout)"
            ) from None
        raise NotARepository(f"{path!r} is not inside a git repository") from None
    if await Git(top).ref_target("HEAD") is None:
        # Every run branches from a commit: say so now, not as a rev-parse error at start.
        raise NotARepository(f"{path!r} has no commits yet: make a first commit, then register it")
    return top.resolve()


async def _is_bare(git: Git) -> bool:
    result = await git.run("rev-parse", "--is-bare-repository", check=False)
    return result.returncode == 0 and result.stdout.strip() == "true"


async def identity(repo: Path) -> tuple[str, str]:
    """(git common dir, root commit) of the repository whose root is `repo`: the first
    commit HEAD descends from (of several roots, the oldest git lists last)."""
    git = Git(repo)
    roots = await git.run("rev-list", "--max-parents=0", "HEAD")
    return str(await git.common_dir()), roots.stdout.split()[-1]


async def check_repository(facts: ProjectFacts) -> None:
    """The registered repository as this server sees it now, before any git command fails:
    NotARepository naming the path if it cannot use it (another host's path, moved,
    deleted); RepositoryChanged unless the path is still the root of the repository that
    was registered there (not a plain directory inside another repository, not another
    repository at the same path)."""
    where = facts.repo_path
    try:
        top = await repository_root(where)
    except NotARepository as exc:
        raise NotARepository(
            f"this server cannot use the project's repository (is it on another host, moved "
            f"or deleted?): {exc}"
        ) from None
    if top != Path(where).resolve():
        raise RepositoryChanged(
            f"{where} is no longer a git repository (it is a plain directory inside {top}):"
            f" plait will not run on another repository; restore it, or delete project"
            f" {facts.project_id}"
        )
    if not facts.root_commit:
        return
    known = await Git(top).run("cat-file", "-e", f"{facts.root_commit}^{{commit}}", check=False)
    if known.returncode != 0:
        raise RepositoryChanged(
            f"{where} holds another repository than the one registered (its root commit"
            f" {facts.root_commit[:12]} is not there): restore it, or delete project"
            f" {facts.project_id} and register the new one"
        )
