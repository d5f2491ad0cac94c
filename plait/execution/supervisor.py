"""Supervision: the runs this process drives, their leases, recovery and pools.

The service (use cases) decides what is asked for; the supervisor keeps it going: it keeps
the read models following the store, resumes what a dead process left unfinished, launches
a driver for each run it holds the lease of, renews that lease, and owns the worktree pools.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from plait.domain.events import RunCreated, RunEnded, RunResumed, StopRequested
from plait.domain.ids import result_branch
from plait.domain.plan.parsing import plan_from_mapping
from plait.domain.run import RunState
from plait.domain.statuses import ACTIVE_RUN, RunStatus, TaskStatus
from plait.eventstore import SqlEventStore, StoreError
from plait.eventstore.leases import DEFAULT_TTL, LeaseStore
from plait.execution.errors import NotResumable, ServiceError, UnknownRun
from plait.execution.git.cli import Git, GitError
from plait.execution.git.merging import is_clean
from plait.execution.projects import checked_id
from plait.execution.run.context import RunContext
from plait.execution.run.orchestrator import RunDriver, RunResult
from plait.execution.run.recorder import RunRecorder
from plait.execution.run.recovery import adopt_worktrees, interrupt_tasks, stop_orphan
from plait.execution.runners.agent_check import AgentCheckFailed, check_agents
from plait.execution.runners.orphans import kill_process_groups, processes_inside
from plait.execution.settings import Settings
from plait.execution.worktrees.manager import LEGACY_ROOT, Worktree, WorktreeManager
from plait.execution.worktrees.pool import WorktreePool
from plait.projections import Projector, ReadModels
from plait.projections.codec import decode, encode, project_stream, run_stream

log = logging.getLogger(__name__)


@dataclass
class ActiveRun:
    ctx: RunContext
    task: asyncio.Task[RunResult]


class Supervisor:
    def __init__(
        self, store: SqlEventStore, settings: Settings, read: ReadModels, projector: Projector
    ) -> None:
        self.store = store
        self.settings = settings
        self.read = read
        self.projector = projector
        self.leases = LeaseStore(store)
        self._runs: dict[str, ActiveRun] = {}
        self._projector_task: asyncio.Task[None] | None = None
        self._pools: dict[Path, WorktreePool] = {}

    def driving(self, run_id: str) -> ActiveRun | None:
        """The run's driver in this process, while it is still driving."""
        active = self._runs.get(run_id)
        return active if active is not None and not active.task.done() else None

    def project_of_driven(self, run_id: str) -> str | None:
        """The project of a run this process drives or drove, without reading the store."""
        active = self._runs.get(run_id)
        return None if active is None else active.ctx.recorder.state.project_id

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
        if await self.abandoned_start(run_id):
            # RunStarted was stored but the process died before RunCreated: nothing ran.
            await self.append(
                project_stream(project_id),
                [RunEnded(project_id=project_id, run_id=run_id, outcome=RunStatus.FAILED)],
                expected=None,
            )
            return False
        if not await asyncio.to_thread(self.leases.acquire, run_id):
            return False  # a live process drives it
        recorder = await self.recorder(run_id)
        status = recorder.state.status
        if status not in ACTIVE_RUN:
            await asyncio.to_thread(self.leases.release, run_id)
            return False
        await self.reap_orphans(recorder)
        if status == RunStatus.STOPPING:  # the stop was asked for: finish it, do not resume
            await stop_orphan(recorder, recorder.state.stop_reason or "stop requested")
            await self.append(
                project_stream(project_id),
                [RunEnded(project_id=project_id, run_id=run_id, outcome=RunStatus.STOPPED)],
                expected=None,
            )
            await asyncio.to_thread(self.leases.release, run_id)
            return False
        if status == RunStatus.RUNNING:
            await interrupt_tasks(recorder, "the process driving the run ended")
            await recorder.record(RunResumed(run_id=run_id, reason="recovered after a crash"))
        await self.launch(project_id, run_id, recorder)
        return True

    async def reap_orphans(self, recorder: RunRecorder) -> None:
        """Kill what the dead driver's tasks left running; clear half-made worktrees."""
        git = Git(Path(recorder.state.repo_path or "."))
        worktrees = await self.worktrees(git, recorder.state)
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
                await self.request_stop(active, "the service is shutting down")
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

    async def wait_run(self, run_id: str) -> RunResult:
        active = self._runs.get(run_id)
        if active is None:
            raise UnknownRun(f"run {run_id} is not running in this process")
        return await asyncio.shield(active.task)

    def run_state(self, run_id: str) -> RunState | None:
        active = self._runs.get(run_id)
        return None if active is None else active.ctx.recorder.state

    async def launch(
        self,
        project_id: str,
        run_id: str,
        recorder: RunRecorder | None = None,
    ) -> None:
        """Drive a run whose lease this process holds, renewing it until the run ends."""
        recorder = recorder or await self.recorder(run_id)
        state = recorder.state
        plan = plan_from_mapping(recorder.plan)
        repo = Path(state.repo_path or ".")
        git = Git(repo)
        ctx = RunContext(
            run_id=run_id,
            plan=plan,
            repo=repo,
            git=git,
            worktrees=await self.worktrees(git, state),
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
        self._runs[run_id] = ActiveRun(ctx, task)

    async def _pool_for(self, repo: Path, worktrees: WorktreeManager) -> WorktreePool:
        """One pool per repository for the life of the service. Slots a dead process left
        behind are taken back: idle ones into the pool, busy ones released unless they
        hold an unreachable commit (then they stay, as kept work)."""
        pool = self._pools.get(repo)
        if pool is None:
            pool = self._pools[repo] = WorktreePool(worktrees, max_idle=self.settings.pool_max_idle)
            for busy in await pool.recover():
                # One with work nobody committed (a task killed with plait) stays leased:
                # its run's recovery adopts it and keeps that work before it is reused.
                if await is_clean(worktrees.git, busy.path):
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

    async def recorder(self, run_id: str) -> RunRecorder:
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

    async def request_stop(self, active: ActiveRun, reason: str) -> None:
        if active.ctx.recorder.state.status in (RunStatus.RUNNING, RunStatus.PENDING):
            await active.ctx.recorder.record(StopRequested(run_id=active.ctx.run_id, reason=reason))
        active.ctx.stop.set()

    async def append(self, stream: str, events: list[Any], *, expected: int | None) -> None:
        encoded = [encode(e, {"actor": self.settings.actor}) for e in events]
        await asyncio.to_thread(self.store.append, stream, encoded, expected)

    async def worktrees(self, git: Git, state: RunState) -> WorktreeManager:
        """The run's own worktree root, as recorded when it was created."""
        if state.worktree_root:
            return WorktreeManager(git, Path(state.worktree_root))
        return WorktreeManager(git, await git.common_dir() / LEGACY_ROOT)

    async def abandoned_start(self, run_id: str) -> bool:
        """RunStarted with no run stream, and nobody holding the run's lease."""
        if await asyncio.to_thread(self.store.stream_version, run_stream(run_id)):
            return False
        return await asyncio.to_thread(self.leases.holder, run_id) is None
