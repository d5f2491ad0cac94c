"""Supervision: the runs this process drives, their leases, recovery and pools.

The service (use cases) decides what is asked for; the supervisor keeps it going: it keeps
the read models following the store, resumes what a dead process left unfinished, launches
a driver for each run it holds the lease of, renews that lease, and owns the worktree pools.

`plait serve` also watches (`start(watch=True)`): every `takeover_every` seconds it looks for
active runs whose lease lapsed (their driver died, or was cut off) and takes them over, so a
run whose driver was SIGKILLed is driven again within `ttl + takeover_every` seconds, with no
client call. Of two servers that try at once, the lease lets exactly one win.

A stop for a run another process drives is a request on the run's stream (StopRequested):
that driver hears it from its live feed (driving.py). A run with no live driver is stopped
by whoever takes its lease.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from plait.domain.events import StopRequested
from plait.domain.ids import result_branch
from plait.domain.plan.model import Plan
from plait.domain.plan.parsing import plan_from_mapping
from plait.domain.run import RunState
from plait.domain.statuses import ACTIVE_RUN, RunStatus
from plait.eventstore import EventStore, StoreError
from plait.eventstore.leases import LeaseStore
from plait.eventstore.streams import run_stream
from plait.execution.driving import follow_commands, keep_lease, on_command, request_stop
from plait.execution.errors import NotResumable, ServiceError, UnknownRun
from plait.execution.git.cli import Git, GitError
from plait.execution.projects import checked_id
from plait.execution.run.appends import append, end_run, metadata_of
from plait.execution.run.context import RunContext
from plait.execution.run.orchestrator import RunDriver, RunResult
from plait.execution.run.recorder import RunRecorder
from plait.execution.run.recovery import adopt_worktrees, reap_orphans, recovered_run, stop_orphan
from plait.execution.runners.agent_check import AgentCheckFailed, check_agents
from plait.execution.settings import Settings
from plait.execution.worktrees.manager import LEGACY_ROOT, WorktreeManager
from plait.execution.worktrees.pool import WorktreePool
from plait.projections import Projector, ReadModels

log = logging.getLogger(__name__)


@dataclass
class ActiveRun:
    ctx: RunContext
    task: asyncio.Task[RunResult]
    recovered: bool = False  # resumed at start-up, after the process driving it died


class Supervisor:
    def __init__(
        self, store: EventStore, settings: Settings, read: ReadModels, projector: Projector
    ) -> None:
        self.store = store
        self.settings = settings
        self.read = read
        self.projector = projector
        self.leases = LeaseStore(store, timings=settings.leases)
        self._runs: dict[str, ActiveRun] = {}
        self._projector_task: asyncio.Task[None] | None = None
        self._watcher: asyncio.Task[None] | None = None
        self.takeover_checks = 0  # passes of the watch, for /metrics
        self._pools: dict[Path, WorktreePool] = {}

    def driving(self, run_id: str) -> ActiveRun | None:
        """The run's driver in this process, while it is still driving."""
        active = self._runs.get(run_id)
        return active if active is not None and not active.task.done() else None

    def recovered(self, run_id: str) -> ActiveRun | None:
        """The run's driver here if recovery resumed it, driving still or ended since."""
        return active if (active := self._runs.get(run_id)) and active.recovered else None

    def project_of_driven(self, run_id: str) -> str | None:
        """The project of a run this process drives or drove, without reading the store."""
        active = self._runs.get(run_id)
        return None if active is None else active.ctx.recorder.state.project_id

    async def start(self, *, recover: bool = True, watch: bool = False) -> list[str]:
        """Bring the read models up to date, keep them following the store, and resume
        every run a dead process left unfinished. Returns the ids of the resumed runs.
        `watch`: go on taking over runs whose lease lapses, every `takeover_every` s."""
        if self._projector_task is None:
            await asyncio.to_thread(self.projector.catch_up)
            if self.settings.follow_projections:
                self._projector_task = asyncio.create_task(self._follow_projections())
        resumed = await self.recover() if recover else []
        if watch and self._watcher is None:
            self._watcher = asyncio.create_task(self._watch(), name="plait-takeover")
        return resumed

    async def _watch(self) -> None:
        """Each pass is `recover()`: it takes a run only by winning its (lapsed) lease."""
        while True:
            await asyncio.sleep(self.settings.leases.takeover_every)
            try:
                taken = await self.recover()
            except (StoreError, OSError) as exc:
                log.warning("takeover watch: %s; trying again", exc)
                continue
            finally:
                self.takeover_checks += 1
            for run_id in taken:
                log.warning("took over run %s: its lease had lapsed", run_id)

    async def _follow_projections(self) -> None:
        """Keep the read models following the store. A database outage pauses them; it must
        not end them, or every status read afterwards would be stale for good."""
        delay = 0.1
        while True:
            try:
                await self.projector.follow()
                return
            except (StoreError, SQLAlchemyError) as exc:  # e.g. another projector's race
                log.warning("projections paused: %s; retrying in %.1f s", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def recover(self) -> list[str]:
        """Resume (or finish stopping) the unfinished runs nobody drives any more."""
        await self.wait_until_projected()
        resumed = []
        for project in self.read.projects():
            run_id = project["active_run_id"]
            # Held here (driven, or being started or resumed): not a lapsed lease.
            if not run_id or self.leases.fence(str(run_id)) or self.driving(str(run_id)):
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
            await self.end(project_id, run_id, RunStatus.FAILED)
            return False
        fence = await asyncio.to_thread(self.leases.acquire, run_id)
        if fence is None:
            return False  # a live process drives it
        try:
            recorder = await self.recorder(run_id)
            recorder.fence = fence
            status = recorder.state.status
            if status not in ACTIVE_RUN:
                await asyncio.to_thread(self.leases.release, run_id)
                return False
            await self.reap_orphans(recorder)
            decided = await recovered_run(recorder)  # the domain: resume it, or finish its stop
            if not decided.launch:  # the stop was asked for: finish it, not resume
                await self.finish_stop(project_id, recorder, recorder.state.stop_reason or "")
                return False
            await recorder.record(*decided.events)
            await self.launch(project_id, run_id, recorder)
            self._runs[run_id].recovered = True
        except BaseException:
            if self.driving(run_id) is None:
                await asyncio.to_thread(self.leases.release, run_id)
            raise
        return True

    async def finish_stop(self, project_id: str, recorder: RunRecorder, reason: str) -> None:
        """Stop a run nobody drives, holding its lease (recorder.fence), then release it."""
        try:
            await stop_orphan(recorder, reason or "stop requested")
            await self.end(project_id, recorder.run_id, RunStatus.STOPPED, recorder)
        finally:
            await asyncio.to_thread(self.leases.release, recorder.run_id)

    async def stop(self, project_id: str, run_id: str, reason: str) -> None:
        """Stop a run driven elsewhere (a request its driver acts on) or by nobody (here)."""
        fence = await asyncio.to_thread(self.leases.acquire, run_id)
        if fence is None:
            await self.request_stop_elsewhere(run_id, reason)
            return
        try:
            recorder = await self.recorder(run_id)
            recorder.fence = fence
            await self.reap_orphans(recorder)
        except BaseException:
            await asyncio.to_thread(self.leases.release, run_id)
            raise
        await self.finish_stop(project_id, recorder, reason)

    async def request_stop_elsewhere(self, run_id: str, reason: str) -> None:
        """Record StopRequested on the run's stream for the process that drives it."""
        await request_stop(await self.recorder(run_id), reason)

    async def end(
        self, project_id: str, run_id: str, outcome: RunStatus, recorder: RunRecorder | None = None
    ) -> None:
        """RunEnded: the recorder's (fenced by its lease), else this process's."""
        if recorder is not None:
            return await recorder.end_run(project_id, outcome)
        metadata = metadata_of(self.settings.actor, run_id)
        await end_run(self.store, project_id, run_id, outcome, metadata=metadata)

    async def reap_orphans(self, recorder: RunRecorder) -> None:
        """Kill what the dead driver's tasks left running; clear half-made worktrees."""
        git = Git(Path(recorder.state.repo_path or "."))
        await reap_orphans(recorder, git, await self.worktrees(git, recorder.state))

    async def close(self) -> None:
        """Stop every run this process drives (they stay resumable) and the projector."""
        if self._watcher is not None:
            self._watcher.cancel()
            await asyncio.gather(self._watcher, return_exceptions=True)
            self._watcher = None
        for run_id in list(self._runs):
            active = self._runs.get(run_id)
            if active is not None and not active.task.done():
                await self.request_stop(active, "the service is shutting down")
        if self._runs:
            await asyncio.gather(*(a.task for a in self._runs.values()), return_exceptions=True)
        for pool in self._pools.values() if not self.settings.keep_pool else ():
            try:
                await pool.drain()
            except (GitError, OSError) as exc:
                log.warning("could not drain the worktree pool: %s", exc)
        self._pools.clear()
        if self._projector_task is not None:
            self._projector_task.cancel()
            await asyncio.gather(self._projector_task, return_exceptions=True)
            self._projector_task = None
        elif not self.settings.follow_projections:  # one catch-up for the whole run
            await asyncio.to_thread(self.projector.settle)

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
        plan: Plan | None = None,
    ) -> None:
        """Drive a run whose lease this process holds (`plan`: parsed by the caller)."""
        recorder = recorder or await self.recorder(run_id)
        recorder.fence = self.leases.fence(run_id)
        state = recorder.state
        plan = plan or plan_from_mapping(recorder.plan)
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
            # First: the pool takes back the slots a dead process held (not adopted below).
            ctx.pool = await self._pool_for(repo, ctx.worktrees)
            ctx.pool.hold_at_least(max([0, *(len(b.task_ids) for b in state.batches.values())]))
        await adopt_worktrees(ctx)
        recorder.on_command = lambda event: on_command(ctx, event)
        driver = RunDriver(ctx, project_id)
        task = asyncio.create_task(self._drive_leased(driver), name=f"plait-run-{run_id}")
        self._runs[run_id] = ActiveRun(ctx, task)

    async def _pool_for(self, repo: Path, worktrees: WorktreeManager) -> WorktreePool:
        """One pool per repository for the life of the service (see WorktreePool.take_back)."""
        pool = self._pools.get(repo)
        if pool is None:
            pool = self._pools[repo] = WorktreePool(worktrees, max_idle=self.settings.pool_max_idle)
            await pool.take_back()
        return pool

    async def _drive_leased(self, driver: RunDriver) -> RunResult:
        """Drive the run while renewing its lease; release the lease when it ends."""
        ctx = driver.ctx
        helpers = [
            asyncio.create_task(keep_lease(self.leases, ctx, self.settings.stop_grace)),
            asyncio.create_task(follow_commands(self.store, ctx, ctx.recorder.last_position)),
        ]
        try:
            return await driver.drive()
        finally:
            for helper in helpers:
                helper.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)
            if not ctx.recorder.deposed:
                try:
                    await asyncio.to_thread(self.leases.release, ctx.run_id)
                except StoreError:
                    log.warning("run %s: could not release its lease (it expires)", ctx.run_id)

    async def recorder(self, run_id: str) -> RunRecorder:
        checked_id("run id", run_id)
        events = await asyncio.to_thread(self.store.read_stream, run_stream(run_id))
        if not events:
            raise UnknownRun(f"no run {run_id!r}")
        recorder = RunRecorder.from_history(self.store, events, self.settings.actor)
        if not recorder.plan:
            raise NotResumable(f"run {run_id} has no RunCreated event")
        recorder.outage_tolerance = self.settings.outage_tolerance
        return recorder

    async def request_stop(self, active: ActiveRun, reason: str) -> None:
        if active.ctx.recorder.state.status in (RunStatus.RUNNING, RunStatus.PENDING):
            await active.ctx.recorder.record(StopRequested(run_id=active.ctx.run_id, reason=reason))
        active.ctx.stop.set()

    async def append(
        self, stream: str, events: list[Any], *, expected: int | None, fenced: str | None = None
    ) -> None:
        """Append for a use case; `fenced`: a run whose lease this process holds, whose fence
        the append carries (refused with FencedOff once another process took the run)."""
        fence = self.leases.fence(fenced) if fenced else None
        metadata = metadata_of(self.settings.actor, fenced)
        await append(self.store, stream, events, expected=expected, metadata=metadata, fence=fence)

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
