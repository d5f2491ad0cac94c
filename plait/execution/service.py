"""The application service: the use cases the CLI and the HTTP app call.

Its errors are in plait.execution.errors (re-exported here). Starting a run appends
RunStarted to the project stream with the version the start read, so of two concurrent
starts exactly one wins: the store decides, not a read-then-check.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from plait.domain.batching import plan_batches, select_mode
from plait.domain.events import (
    LandRequested,
    PlanAccepted,
    ProjectDeleted,
    ProjectRegistered,
    RunCreated,
    RunEnded,
    RunEvent,
    RunResumed,
    RunStarted,
    StopRequested,
)
from plait.domain.plan_model import Plan
from plait.domain.run import RunState, result_branch
from plait.domain.run_actions import ActionRefused, check_landable, retry_events, skip_events
from plait.domain.statuses import (
    ACTIVE_RUN,
    DRIVEN_RUN,
    LANDABLE_RUN,
    RESUMABLE_RUN,
    RunStatus,
    TaskStatus,
)
from plait.eventstore import ConcurrencyError, SqlEventStore, StoreError
from plait.eventstore.leases import DEFAULT_TTL, LeaseStore
from plait.execution.agent_check import AgentCheckFailed, AgentInfo, check_agents
from plait.execution.context import RunContext
from plait.execution.diffs import Diff, NoDiff, task_diff
from plait.execution.errors import (
    AgentsUnavailable,
    BadWorktreeRoot,
    InvalidId,
    NoActiveRun,
    NoBaseBranch,
    NoPlan,
    NotARepository,
    NotResumable,
    RunAlreadyActive,
    ServiceError,
    UnknownProject,
    UnknownRun,
    UnknownTask,
)
from plait.execution.git import Git, GitError
from plait.execution.orchestrator import RunDriver, RunResult
from plait.execution.orphans import kill_process_groups, processes_inside
from plait.execution.projects import (
    ProjectFacts,
    checked_id,
    fold_project,
    new_id,
    project_id_for,
    repository_root,
    storable,
    visible_repository,
)
from plait.execution.recorder import RunRecorder
from plait.execution.recovery import adopt_worktrees, interrupt_tasks, stop_orphan
from plait.execution.settings import Settings
from plait.execution.worktree_pool import WorktreePool
from plait.execution.worktrees import (
    LEGACY_ROOT,
    Worktree,
    WorktreeError,
    WorktreeManager,
    worktree_root_for,
)
from plait.projections import Projector, ReadModels, all_projections
from plait.projections.codec import decode, encode, project_stream, run_stream

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Action:
    """How a run is continued: what the resume is called, from which statuses, and the
    events (decided in the domain) recorded right after RunResumed."""

    name: str  # the reason RunResumed records
    allowed: frozenset[RunStatus]
    events: Callable[[RunState], Sequence[RunEvent]]
    needs: str = "only a stopped, failed or interrupted run can continue"


_RESUME = _Action(
    "resumed",
    RESUMABLE_RUN | DRIVEN_RUN,
    lambda state: (),
    "only a stopped, failed or interrupted run can be resumed",
)


def _land_events(state: RunState) -> list[RunEvent]:
    check_landable(state)
    return [LandRequested(run_id=state.run_id, reason="plait land")]


_LAND = _Action(
    "to land its tested work",
    LANDABLE_RUN,
    _land_events,
    "only a stopped, failed or kept run has a result to land",
)


@dataclass(frozen=True)
class Registration:
    project_id: str
    created: bool  # False: the repository was registered already


@dataclass
class _ActiveRun:
    ctx: RunContext
    task: asyncio.Task[RunResult]


class Plait:
    def __init__(self, store: SqlEventStore, settings: Settings | None = None) -> None:
        self.store = store
        self.settings = settings or Settings()
        self.read = ReadModels(store)
        self.projector = Projector(store, all_projections())
        self._runs: dict[str, _ActiveRun] = {}
        self._projector_task: asyncio.Task[None] | None = None
        self.leases = LeaseStore(store)
        self._pools: dict[Path, WorktreePool] = {}

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self, *, recover: bool = True) -> list[str]:
        """Bring the read models up to date, keep them following the store, and resume
        every run a dead process left unfinished. Returns the ids of the resumed runs."""
        if self._projector_task is None:
            await asyncio.to_thread(self.projector.catch_up)
            self._projector_task = asyncio.create_task(self._follow_projections())
        return await self.recover() if recover else []

    async def _follow_projections(self) -> None:
        """Keep the read models following the store. A database outage pauses them; it must
        not end them, or every status read afterwards would be stale for good."""
        delay = 0.1
        while True:
            try:
                await self.projector.follow()
                return
            except StoreError as exc:
                log.warning("projections paused: %s; retrying in %.1f s", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def recover(self) -> list[str]:
        """Resume (or finish stopping) the unfinished runs nobody drives any more."""
        await self.wait_until_projected()
        resumed = []
        for project in self.read.projects():
            run_id = project["active_run_id"]
            if not run_id or run_id in self._runs:
                continue
            try:
                if await self._recover_run(str(project["project_id"]), str(run_id)):
                    resumed.append(str(run_id))
            except (ServiceError, GitError, StoreError, OSError) as exc:
                log.error("could not recover run %s: %s", run_id, exc)
        return resumed

    async def _recover_run(self, project_id: str, run_id: str) -> bool:
        if await self._abandoned_start(run_id):
            # RunStarted was stored but the process died before RunCreated: nothing ran.
            await self._append(
                project_stream(project_id),
                [RunEnded(project_id=project_id, run_id=run_id, outcome=RunStatus.FAILED)],
                expected=None,
            )
            return False
        if not await asyncio.to_thread(self.leases.acquire, run_id):
            return False  # a live process drives it
        recorder = await self._recorder(run_id)
        status = recorder.state.status
        if status not in ACTIVE_RUN:
            await asyncio.to_thread(self.leases.release, run_id)
            return False
        await self._reap_orphans(recorder)
        if status == RunStatus.STOPPING:  # the stop was asked for: finish it, do not resume
            await stop_orphan(recorder, recorder.state.stop_reason or "stop requested")
            await self._append(
                project_stream(project_id),
                [RunEnded(project_id=project_id, run_id=run_id, outcome=RunStatus.STOPPED)],
                expected=None,
            )
            await asyncio.to_thread(self.leases.release, run_id)
            return False
        if status == RunStatus.RUNNING:
            await interrupt_tasks(recorder, "the process driving the run ended")
            await recorder.record(RunResumed(run_id=run_id, reason="recovered after a crash"))
        await self._launch(project_id, run_id, recorder, leased=True)
        return True

    async def _reap_orphans(self, recorder: RunRecorder) -> None:
        """Kill what the dead driver's tasks left running; clear half-made worktrees."""
        git = Git(Path(recorder.state.repo_path or "."))
        worktrees = await self._worktrees(git, recorder.state)
        run_root = (await worktrees.root()) / recorder.run_id
        # The run's own directory, and the worktrees its unfinished tasks were given (a
        # pooled worktree lives outside the run's directory).
        places = {run_root} | {
            Path(task.worktree_path)
            for task in recorder.state.tasks.values()
            if task.status in (TaskStatus.RUNNING, TaskStatus.RESOLVING) and task.worktree_path
        }
        pids: set[int] = set()
        for place in places:
            pids.update(await asyncio.to_thread(processes_inside, place))
        killed = kill_process_groups(sorted(pids))
        if killed:
            log.warning("run %s: killed %d orphaned task process group(s)", recorder.run_id, killed)
        for entry in await worktrees.list_porcelain():
            path = Path(entry.path)
            if path.parent == run_root and entry.locked is not None:
                # A `worktree add` killed midway: locked "initializing", never used.
                await worktrees.remove(Worktree(path, None, path.name, entry.head or ""))
        await git.run_admin("worktree", "prune")

    async def close(self) -> None:
        """Stop every run this process drives (they stay resumable) and the projector."""
        for run_id in list(self._runs):
            active = self._runs.get(run_id)
            if active is not None and not active.task.done():
                await self._request_stop(active, "the service is shutting down")
        if self._runs:
            await asyncio.gather(*(a.task for a in self._runs.values()), return_exceptions=True)
        for pool in self._pools.values():
            try:
                await pool.drain()
            except (GitError, OSError) as exc:
                log.warning("could not drain the worktree pool: %s", exc)
        self._pools.clear()
        if self._projector_task is not None:
            self._projector_task.cancel()
            await asyncio.gather(self._projector_task, return_exceptions=True)
            self._projector_task = None

    async def wait_until_projected(self, position: int | None = None) -> None:
        target = (
            position if position is not None else await asyncio.to_thread(self.store.last_position)
        )
        if self._projector_task is None:
            await asyncio.to_thread(self.projector.catch_up)
            return
        await self.projector.wait_for(target)

    # -- projects and plans ----------------------------------------------------------------

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
        event = ProjectRegistered(
            project_id=project_id, name=(name or repo.name)[:200], repo_path=str(repo)
        )
        try:
            await self._append(stream, [event], expected=events[-1].stream_version if events else 0)
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
            await self._append(
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
        await self._append(project_stream(project_id), [event], expected=None)
        return {"mode": decision.mode, "reason": decision.reason, "batches": described}

    async def project(self, project_id: str) -> ProjectFacts:
        checked_id("project id", project_id)
        events = await asyncio.to_thread(self.store.read_stream, project_stream(project_id))
        facts = fold_project(project_id, events) if events else None
        if facts is None or facts.deleted:
            raise UnknownProject(f"no project {project_id!r}")
        return facts

    def project_of_run(self, run_id: str) -> str | None:
        active = self._runs.get(run_id)
        if active is not None:
            return active.ctx.recorder.state.project_id
        status = self.read.run_status(run_id)
        return None if status is None else str(status["project_id"])

    # -- runs ------------------------------------------------------------------------------

    async def start_run(
        self, project_id: str, *, max_concurrency: int | None = None, base: str | None = None
    ) -> str:
        """Start a run of the project's plan; `max_concurrency` and `base` override the
        plan's."""
        facts = await self.project(project_id)
        if facts.active_run is not None and await self._abandoned_start(facts.active_run):
            # A start that died between RunStarted and RunCreated: nothing ran; close it.
            await self._append(
                project_stream(project_id),
                [
                    RunEnded(
                        project_id=project_id, run_id=facts.active_run, outcome=RunStatus.FAILED
                    )
                ],
                expected=facts.version,
            )
            facts = await self.project(project_id)
        if facts.active_run is not None:
            raise RunAlreadyActive(
                f"run {facts.active_run} of project {project_id} is still active",
                facts.active_run,
            )
        if facts.plan is None:
            raise NoPlan(f"project {project_id} has no plan: submit one first")
        await visible_repository(facts.repo_path)
        plan = _overridden(
            Plan.from_dict(facts.plan["plan"]), max_concurrency=max_concurrency, base=base
        )
        git = Git(Path(facts.repo_path))
        base_branch = plan.base or await git.current_branch()
        if not base_branch:
            raise NoBaseBranch(
                f"{facts.repo_path} has a detached HEAD: give the plan a `base` branch"
            )
        try:
            base_commit = await git.rev_parse(f"refs/heads/{base_branch}")
        except GitError as exc:
            raise NoBaseBranch(f"base branch {base_branch!r}: {exc}") from None
        worktree_root = await self._worktree_root(git, plan)
        await self._agents(plan)
        run_id = new_id()
        # The lease first: while this start is between RunStarted and RunCreated, a
        # concurrent start must see a live run, not an abandoned one.
        await asyncio.to_thread(self.leases.acquire, run_id)
        try:
            await self._append(
                project_stream(project_id),
                [RunStarted(project_id=project_id, run_id=run_id)],
                expected=facts.version,
            )
        except BaseException as exc:
            await asyncio.to_thread(self.leases.release, run_id)
            if isinstance(exc, ConcurrencyError):
                raise RunAlreadyActive(
                    f"another run of project {project_id} just started"
                ) from None
            raise
        created = RunCreated(
            run_id=run_id,
            project_id=project_id,
            plan=plan.to_dict(),
            batches=[b.to_dict() for b in plan_batches(plan)],
            base_branch=base_branch,
            base_commit=base_commit,
            repo_path=facts.repo_path,
            max_concurrency=plan.max_concurrency,
            worktree_root=str(worktree_root),
        )
        await self._append(run_stream(run_id), [created], expected=0)
        await self._launch(project_id, run_id, leased=True)
        return run_id

    async def _worktree_root(self, git: Git, plan: Plan) -> Path:
        """--worktree-root, else the plan's `worktree_root`, else plait's data directory."""
        base = self.settings.worktree_root or (
            Path(plan.worktree_root) if plan.worktree_root else None
        )
        try:
            return await worktree_root_for(git, base)
        except WorktreeError as exc:
            raise BadWorktreeRoot(str(exc)) from None

    @staticmethod
    async def _agents(plan: Plan) -> dict[str, AgentInfo]:
        """The plan's agent CLIs, each installed in a version plait drives, or refused."""
        try:
            return await check_agents(plan)
        except AgentCheckFailed as exc:
            raise AgentsUnavailable("; ".join(exc.problems)) from None

    async def _worktrees(self, git: Git, state: RunState) -> WorktreeManager:
        """The run's own worktree root, as recorded when it was created."""
        if state.worktree_root:
            return WorktreeManager(git, Path(state.worktree_root))
        return WorktreeManager(git, await git.common_dir() / LEGACY_ROOT)

    async def _abandoned_start(self, run_id: str) -> bool:
        """RunStarted with no run stream, and nobody holding the run's lease."""
        if await asyncio.to_thread(self.store.stream_version, run_stream(run_id)):
            return False
        return await asyncio.to_thread(self.leases.holder, run_id) is None

    async def stop_run(self, project_id: str, reason: str = "stop requested") -> str:
        facts = await self.project(project_id)
        run_id = facts.active_run
        if run_id is None:
            raise NoActiveRun(f"project {project_id} has no active run to stop")
        active = self._runs.get(run_id)
        if active is not None and not active.task.done():
            await self._request_stop(active, reason)
            return run_id
        # Nobody drives it (a crashed process): stop it here so it can be resumed.
        recorder = await self._recorder(run_id)
        await stop_orphan(recorder, reason)
        await self._append(
            project_stream(project_id),
            [RunEnded(project_id=project_id, run_id=run_id, outcome=RunStatus.STOPPED)],
            expected=None,
        )
        return run_id

    async def resume_run(self, project_id: str, run_id: str | None = None) -> str:
        return await self._continue(project_id, run_id, _RESUME)

    async def land_run(self, run_id: str) -> str:
        """`plait land`: land a stopped, failed or kept run's tested result on its base with
        the run's own landing (compare-and-swap, or a fast-forward of a clean checkout)."""
        return await self._continue(await self._owner(run_id), run_id, _LAND)

    async def retry_task(self, run_id: str, task_id: str) -> str:
        """Run a task that did not land again (and the tasks skipped because of it), then
        carry on with the run."""
        action = _Action(
            f"to retry task {task_id!r}",
            RESUMABLE_RUN | DRIVEN_RUN,
            lambda s: retry_events(s, task_id),
        )
        return await self._continue(await self._owner(run_id), run_id, action)

    async def skip_task(self, run_id: str, task_id: str) -> str:
        """Go on without a task (its dependents are skipped too), then carry on with the run."""
        action = _Action(
            f"to skip task {task_id!r}",
            RESUMABLE_RUN | DRIVEN_RUN,
            lambda s: skip_events(s, task_id),
        )
        return await self._continue(await self._owner(run_id), run_id, action)

    async def _owner(self, run_id: str) -> str:
        checked_id("run id", run_id)
        await self.wait_until_projected()
        project_id = self.project_of_run(run_id)
        if project_id is None:
            raise UnknownRun(f"no run {run_id!r}")
        return project_id

    async def _continue(self, project_id: str, run_id: str | None, action: _Action) -> str:
        facts = await self.project(project_id)
        run_id = checked_id("run id", run_id) if run_id else facts.last_run
        if run_id is None:
            raise UnknownRun(f"project {project_id} has no run to resume")
        await visible_repository(facts.repo_path)
        if run_id in self._runs and not self._runs[run_id].task.done():
            raise RunAlreadyActive(f"run {run_id} is running in this process", run_id)
        if facts.active_run not in (None, run_id):
            raise RunAlreadyActive(f"run {facts.active_run} is active", facts.active_run)
        if not await asyncio.to_thread(self.leases.acquire, run_id):
            holder = await asyncio.to_thread(self.leases.holder, run_id)
            raise RunAlreadyActive(f"run {run_id} is driven by another process ({holder})", run_id)
        try:
            return await self._resume_leased(facts, project_id, run_id, action)
        except BaseException:
            await asyncio.to_thread(self.leases.release, run_id)
            raise

    async def _resume_leased(
        self, facts: ProjectFacts, project_id: str, run_id: str, action: _Action
    ) -> str:
        recorder = await self._recorder(run_id)
        status = recorder.state.status
        if status not in action.allowed:
            raise NotResumable(f"run {run_id} is {status}: {action.needs}")
        try:
            then = action.events(recorder.state)  # refused here, before anything is recorded
        except ActionRefused as exc:
            raise NotResumable(str(exc)) from None
        if action is not _LAND:
            await self._agents(Plan.from_dict(recorder.plan))
        if facts.active_run is None:
            try:
                await self._append(
                    project_stream(project_id),
                    [RunStarted(project_id=project_id, run_id=run_id)],
                    expected=facts.version,
                )
            except ConcurrencyError:
                raise RunAlreadyActive(f"project {project_id} changed; try again") from None
        if status in DRIVEN_RUN:
            await self._reap_orphans(recorder)
            await interrupt_tasks(recorder, "the process driving the run ended")
        await recorder.record(RunResumed(run_id=run_id, reason=action.name), *then)
        await self._launch(project_id, run_id, recorder, leased=True)
        return run_id

    async def wait_run(self, run_id: str) -> RunResult:
        active = self._runs.get(run_id)
        if active is None:
            raise UnknownRun(f"run {run_id} is not running in this process")
        return await asyncio.shield(active.task)

    def run_state(self, run_id: str) -> RunState | None:
        active = self._runs.get(run_id)
        return None if active is None else active.ctx.recorder.state

    async def task_diff(self, run_id: str, task_id: str, attempt: int | None = None) -> Diff:
        """A task attempt's diff against its base: its commit, or its worktree so far."""
        checked_id("run id", run_id)
        await self.wait_until_projected()
        state = await asyncio.to_thread(self.read.run_state, run_id)
        if state is None:
            raise UnknownRun(f"no run {run_id!r}")
        task = state.tasks.get(task_id)
        if task is None:
            raise UnknownTask(f"run {run_id} has no task {task_id!r}")
        try:
            return await task_diff(Path(state.repo_path or "."), task, attempt)
        except NoDiff as exc:
            raise UnknownTask(str(exc)) from None

    # -- internals -------------------------------------------------------------------------

    async def _launch(
        self,
        project_id: str,
        run_id: str,
        recorder: RunRecorder | None = None,
        *,
        leased: bool = False,
    ) -> None:
        if not leased and not await asyncio.to_thread(self.leases.acquire, run_id):
            holder = await asyncio.to_thread(self.leases.holder, run_id)
            raise RunAlreadyActive(f"run {run_id} is driven by another process ({holder})", run_id)
        recorder = recorder or await self._recorder(run_id)
        state = recorder.state
        plan = Plan.from_dict(recorder.plan)
        repo = Path(state.repo_path or ".")
        git = Git(repo)
        ctx = RunContext(
            run_id=run_id,
            plan=plan,
            repo=repo,
            git=git,
            worktrees=await self._worktrees(git, state),
            recorder=recorder,
            settings=self.settings,
            result_ref=f"refs/heads/{result_branch(run_id)}",
        )
        try:
            ctx.agents = await check_agents(plan)
        except AgentCheckFailed as exc:  # recovery at start-up: the tasks will say so
            log.warning("run %s: %s", run_id, "; ".join(exc.problems))
        if self.settings.reuse_worktrees:
            # First: the pool takes back (and detaches) the slots a dead process held, so
            # they are not adopted below as this run's worktrees.
            ctx.pool = await self._pool_for(repo, ctx.worktrees)
        await adopt_worktrees(ctx)
        driver = RunDriver(ctx, project_id)
        task = asyncio.create_task(self._drive_leased(driver), name=f"plait-run-{run_id}")
        self._runs[run_id] = _ActiveRun(ctx, task)

    async def _pool_for(self, repo: Path, worktrees: WorktreeManager) -> WorktreePool:
        """One pool per repository for the life of the service. Slots a dead process left
        behind are taken back: idle ones into the pool, busy ones released unless they
        hold an unreachable commit (then they stay, as kept work)."""
        pool = self._pools.get(repo)
        if pool is None:
            pool = self._pools[repo] = WorktreePool(worktrees, max_idle=self.settings.pool_max_idle)
            for busy in await pool.recover():
                await pool.release(busy)
        return pool

    async def _drive_leased(self, driver: RunDriver) -> RunResult:
        """Drive the run while renewing its lease; release the lease when it ends."""
        run_id = driver.ctx.run_id

        async def renew() -> None:
            while True:
                await asyncio.sleep(DEFAULT_TTL / 3)
                try:
                    renewed = await asyncio.to_thread(self.leases.acquire, run_id)
                except StoreError as exc:  # an outage: keep the run (it pauses) and try again
                    log.warning("run %s: could not renew its lease: %s", run_id, exc)
                    continue
                if not renewed:
                    log.error("run %s: lost its lease to another process; stopping", run_id)
                    driver.ctx.stop.set()
                    return

        renewer = asyncio.create_task(renew())
        try:
            return await driver.drive()
        finally:
            renewer.cancel()
            try:
                await asyncio.to_thread(self.leases.release, run_id)
            except StoreError:
                log.warning("run %s: could not release its lease (it will expire)", run_id)

    async def _recorder(self, run_id: str) -> RunRecorder:
        checked_id("run id", run_id)
        events = await asyncio.to_thread(self.store.read_stream, run_stream(run_id))
        if not events:
            raise UnknownRun(f"no run {run_id!r}")
        state = RunState()
        plan: dict[str, Any] | None = None
        for stored in events:
            event = decode(stored)
            if isinstance(event, RunCreated):
                plan = event.plan
            state.apply(event, stored.recorded_text)
        if plan is None:
            raise NotResumable(f"run {run_id} has no RunCreated event")
        recorder = RunRecorder(self.store, state, events[-1].stream_version, self.settings.actor)
        recorder.plan = plan
        recorder.outage_tolerance = self.settings.outage_tolerance
        return recorder

    async def _request_stop(self, active: _ActiveRun, reason: str) -> None:
        if active.ctx.recorder.state.status in (RunStatus.RUNNING, RunStatus.PENDING):
            await active.ctx.recorder.record(StopRequested(run_id=active.ctx.run_id, reason=reason))
        active.ctx.stop.set()

    async def _append(self, stream: str, events: list[Any], *, expected: int | None) -> None:
        encoded = [encode(e, {"actor": self.settings.actor}) for e in events]
        await asyncio.to_thread(self.store.append, stream, encoded, expected)


__all__ = [
    "AgentsUnavailable",
    "BadWorktreeRoot",
    "InvalidId",
    "NoActiveRun",
    "NoBaseBranch",
    "NoPlan",
    "NotARepository",
    "NotResumable",
    "Plait",
    "ProjectFacts",
    "Registration",
    "RunAlreadyActive",
    "ServiceError",
    "UnknownProject",
    "UnknownRun",
    "UnknownTask",
]


def _overridden(plan: Plan, **settings: object) -> Plan:
    """The plan with the given settings (None: the plan's own), checked like a plan file:
    a bad `base` is refused in the plan's words."""
    given = {key: value for key, value in settings.items() if value is not None}
    return Plan.from_dict({**plan.to_dict(), **given}) if given else plan
