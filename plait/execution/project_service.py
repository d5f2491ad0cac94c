"""The projects' use cases: registering a repository, its plans, and reading its facts.

One repository is one project. Every change appends to the project stream with the version
it read, so concurrent registrations and deletions are decided by the store.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from plait.domain.events import PlanAccepted, ProjectDeleted, ProjectRegistered
from plait.domain.plan.batching import plan_batches, select_mode
from plait.domain.plan.model import Plan
from plait.eventstore import ConcurrencyError, EventStore
from plait.eventstore.streams import project_stream
from plait.execution.errors import RunAlreadyActive, ServiceError, UnknownProject
from plait.execution.projects import (
    ProjectFacts,
    checked_id,
    fold_project,
    identity,
    project_id_for,
    repository_root,
    storable,
)
from plait.execution.supervisor import Supervisor
from plait.projections import ReadModels


@dataclass(frozen=True)
class Registration:
    project_id: str
    created: bool  # False: the repository was registered already


class ProjectService:
    store: EventStore
    read: ReadModels
    supervisor: Supervisor
    _submitted: dict[str, Plan]  # the plan this process last submitted, by project

    async def wait_until_projected(self, position: int | None = None) -> None:
        await self.supervisor.wait_until_projected(position)

    async def register_project(self, path: str, name: str | None = None) -> str:
        return (await self.register(path, name)).project_id

    async def register(self, path: str, name: str | None = None) -> Registration:
        """Register the repository at `path`, or find it registered already: one repository
        is one project (two would let two runs work on it at once)."""
        repo = await repository_root(path)
        if name is not None and not storable(name):
            raise ServiceError(
                f"project name {name!r}: not storable text (a NUL or a lone surrogate)"
            )
        known = await self._project_at(repo)
        if known is not None:  # registered before ids came from the path
            return Registration(known, created=False)
        project_id = project_id_for(repo)
        stream = project_stream(project_id)
        events = await asyncio.to_thread(self.store.read_stream, stream)
        if events and not fold_project(project_id, events).deleted:
            return Registration(project_id, created=False)
        common_dir, root_commit = await identity(repo)
        event = ProjectRegistered(
            project_id=project_id,
            name=(name or repo.name)[:200],
            repo_path=str(repo),
            common_dir=common_dir,
            root_commit=root_commit,
        )
        try:
            await self.supervisor.append(
                stream, [event], expected=events[-1].stream_version if events else 0
            )
        except ConcurrencyError:  # registered meanwhile by someone else: that one counts
            return Registration(project_id, created=False)
        return Registration(project_id, created=True)

    async def _project_at(self, repo: Path) -> str | None:
        await self.wait_until_projected()
        for project in await asyncio.to_thread(self.read.projects):
            if project["repo_path"] == str(repo):
                return str(project["project_id"])
        return None

    async def find_project(self, path: str) -> str | None:
        """The project registered for this repository, if any."""
        return await self._project_at(await repository_root(path))

    async def delete_project(self, project_id: str) -> None:
        """Unregister a project. Refused while one of its runs is active; its runs, branches
        and worktrees stay (see `plait clean`)."""
        facts = await self.project(project_id)
        if facts.active_run is not None:
            raise RunAlreadyActive(
                f"run {facts.active_run} of project {project_id} is active: stop it first",
                facts.active_run,
            )
        try:
            await self.supervisor.append(
                project_stream(project_id),
                [ProjectDeleted(project_id=project_id)],
                expected=facts.version,
            )
        except ConcurrencyError:
            raise RunAlreadyActive(f"project {project_id} changed meanwhile; try again") from None

    async def submit_plan(self, project_id: str, plan: Plan, source: str = "api") -> dict[str, Any]:
        facts = await self.project(project_id)
        batches = plan_batches(plan)
        decision = select_mode(batches, plan.max_concurrency)
        described = [b.to_dict() for b in batches]
        event = PlanAccepted(
            project_id=facts.project_id,
            plan=plan.to_dict(),
            batches=described,
            mode=decision.mode,
            reason=decision.reason,
            source=source,
        )
        await self.supervisor.append(project_stream(project_id), [event], expected=None)
        # A start in this process takes the plan as it is, not parsed again (one parse and
        # one batching per command).
        self._submitted[facts.project_id] = plan
        return {"mode": decision.mode, "reason": decision.reason, "batches": described}

    async def project(self, project_id: str) -> ProjectFacts:
        checked_id("project id", project_id)
        events = await asyncio.to_thread(self.store.read_stream, project_stream(project_id))
        facts = fold_project(project_id, events) if events else None
        if facts is None or facts.deleted:
            raise UnknownProject(f"no project {project_id!r}")
        return facts

    def project_of_run(self, run_id: str) -> str | None:
        driven = self.supervisor.project_of_driven(run_id)
        if driven is not None:
            return driven
        status = self.read.run_status(run_id)
        return None if status is None else str(status["project_id"])
