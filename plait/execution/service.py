"""The application service: the use cases the CLI and the HTTP app call.

Its errors are in plait.execution.errors (re-exported here). Starting a run appends
RunStarted to the project stream with the version the start read, so of two concurrent
starts exactly one wins: the store decides, not a read-then-check.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import Any

from plait.domain import run_actions
from plait.domain.events import (
    RunCreated,
    RunResumed,
    RunStarted,
)
from plait.domain.plan.batching import plan_batches
from plait.domain.plan.model import Plan, Schedule
from plait.domain.plan.parsing import plan_from_mapping
from plait.domain.run import RunState
from plait.domain.run_actions import ActionRefused
from plait.domain.statuses import (
    DRIVEN_RUN,
    RunStatus,
)
from plait.eventstore import ConcurrencyError, EventStore
from plait.eventstore.streams import project_stream, run_stream
from plait.execution.errors import (
    AgentsUnavailable,
    BadWorktreeRoot,
    InvalidId,
    NoActiveRun,
    NoBaseBranch,
    NoPlan,
    NotARepository,
    NotResumable,
    RepositoryChanged,
    RunAlreadyActive,
    SandboxUnavailable,
    ServiceError,
    UnknownProject,
    UnknownRun,
    UnknownTask,
)
from plait.execution.git.cli import Git, GitError
from plait.execution.git.diffs import Diff, NoDiff, task_diff
from plait.execution.project_service import ProjectService, Registration
from plait.execution.projects import (
    ProjectFacts,
    check_repository,
    checked_id,
    new_id,
)
from plait.execution.run.orchestrator import RunResult
from plait.execution.run.recovery import adopt_finished_attempts, interrupt_tasks
from plait.execution.runners.agent_check import AgentCheckFailed, AgentInfo, check_agents
from plait.execution.runners.sandbox import SandboxMissing, check_bwrap
from plait.execution.settings import Settings
from plait.execution.supervisor import Supervisor
from plait.execution.worktrees.manager import (
    WorktreeError,
    worktree_root_for,
)
from plait.projections import Projector, ReadModels, all_projections

log = logging.getLogger(__name__)


class Plait(ProjectService):
    """The use cases: the projects' (registration, plans) and the runs'. What keeps runs
    going (leases, recovery, pools, the read models' feed) is the supervisor's."""

    def __init__(self, store: EventStore, settings: Settings | None = None) -> None:
        self.store = store
        self.settings = settings or Settings()
        self.read = ReadModels(store)
        self.projector = Projector(store, all_projections())
        self.supervisor = Supervisor(store, self.settings, self.read, self.projector)
        self._submitted: dict[str, Plan] = {}  # the plan this process last submitted, by project

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self, *, recover: bool = True, watch: bool = False) -> list[str]:
        """Bring the read models up to date, keep them following the store, and resume
        every run a dead process left unfinished. Returns the ids of the resumed runs.
        `watch` (`plait serve`): go on taking over runs whose lease lapses."""
        return await self.supervisor.start(recover=recover, watch=watch)

    async def recover(self) -> list[str]:
        """Resume (or finish stopping) the unfinished runs nobody drives any more."""
        return await self.supervisor.recover()

    async def close(self) -> None:
        """Stop every run this process drives (they stay resumable) and the projector."""
        await self.supervisor.close()

    async def wait_run(self, run_id: str) -> RunResult:
        return await self.supervisor.wait_run(run_id)

    def run_state(self, run_id: str) -> RunState | None:
        return self.supervisor.run_state(run_id)

    # -- runs ------------------------------------------------------------------------------

    async def start_run(
        self, project_id: str, *, max_concurrency: int | None = None, base: str | None = None
    ) -> str:
        """Start a run of the project's plan; `max_concurrency` and `base` override the
        plan's."""
        facts = await self.project(project_id)
        if facts.active_run is not None and await self.supervisor.abandoned_start(facts.active_run):
            # A start that died between RunStarted and RunCreated: nothing ran; close it.
            with contextlib.suppress(ConcurrencyError):  # closed meanwhile elsewhere
                await self.supervisor.end(project_id, facts.active_run, RunStatus.FAILED)
            facts = await self.project(project_id)
        if facts.active_run is not None:
            raise RunAlreadyActive(
                f"run {facts.active_run} of project {project_id} is still active",
                facts.active_run,
            )
        if facts.plan is None:
            raise NoPlan(f"project {project_id} has no plan: submit one first")
        await check_repository(facts)
        plan, batches = self._accepted(facts, max_concurrency=max_concurrency, base=base)
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
        await asyncio.to_thread(self.supervisor.leases.acquire, run_id)
        try:
            await self.supervisor.append(
                project_stream(project_id),
                [RunStarted(project_id=project_id, run_id=run_id)],
                expected=facts.version,
                fenced=run_id,
            )
        except BaseException as exc:
            await asyncio.to_thread(self.supervisor.leases.release, run_id)
            if isinstance(exc, ConcurrencyError):
                raise RunAlreadyActive(
                    f"another run of project {project_id} just started"
                ) from None
            raise
        created = RunCreated(
            run_id=run_id,
            project_id=project_id,
            plan=plan.to_dict(),
            # A ready run's batches are its merge rounds, made as its tasks finish.
            batches=[] if plan.schedule is Schedule.READY else batches,
            base_branch=base_branch,
            base_commit=base_commit,
            repo_path=facts.repo_path,
            max_concurrency=plan.max_concurrency,
            worktree_root=str(worktree_root),
        )
        await self.supervisor.append(run_stream(run_id), [created], expected=0, fenced=run_id)
        await self.supervisor.launch(project_id, run_id, plan=plan)
        return run_id

    def _accepted(
        self, facts: ProjectFacts, **overrides: object
    ) -> tuple[Plan, list[dict[str, Any]]]:
        """The project's accepted plan with a start's overrides (`max_concurrency`, `base`)
        and its batches: the plan this process just submitted as it is, else parsed once;
        the batches PlanAccepted recorded (no override changes them)."""
        assert facts.plan is not None
        stored, given = facts.plan["plan"], {k: v for k, v in overrides.items() if v is not None}
        submitted = self._submitted.get(facts.project_id)
        if submitted is not None and not given and submitted.to_dict() == stored:
            plan = submitted
        else:
            # Checked like a plan file: a bad `base` is refused in the plan's words.
            plan = plan_from_mapping({**stored, **given})
        batches = facts.plan.get("batches") or [b.to_dict() for b in plan_batches(plan)]
        return plan, list(batches)

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
        """The plan's agent CLIs, each installed in a version plait drives, or refused (and
        its sandbox, if it asks for one)."""
        if plan.sandbox is not None:
            try:
                check_bwrap()
            except SandboxMissing as exc:
                raise SandboxUnavailable(str(exc)) from None
        try:
            return await check_agents(plan)
        except AgentCheckFailed as exc:
            raise AgentsUnavailable("; ".join(exc.problems)) from None

    async def stop_run(self, project_id: str, reason: str = "stop requested") -> str:
        facts = await self.project(project_id)
        run_id = facts.active_run
        if run_id is None:
            raise NoActiveRun(f"project {project_id} has no active run to stop")
        active = self.supervisor.driving(run_id)
        if active is not None:
            await self.supervisor.request_stop(active, reason)
            return run_id
        # Driven elsewhere: a request its driver acts on. Driven by nobody (a crashed
        # process): stopped here, under its lease, so it can be resumed.
        await self.supervisor.stop(project_id, run_id, reason)
        return run_id

    async def resume_run(self, project_id: str, run_id: str | None = None) -> str:
        return await self._continue(project_id, run_id, run_actions.RESUME)

    async def land_run(self, run_id: str) -> str:
        """`plait land`: land a stopped, failed or kept run's tested result on its base with
        the run's own landing (compare-and-swap, or a fast-forward of a clean checkout)."""
        return await self._continue(await self._owner(run_id), run_id, run_actions.LAND)

    async def retry_task(self, run_id: str, task_id: str) -> str:
        """Run a task that did not land again (and the tasks skipped because of it), then
        carry on with the run."""
        return await self._continue(await self._owner(run_id), run_id, run_actions.retry(task_id))

    async def skip_task(self, run_id: str, task_id: str) -> str:
        """Go on without a task (its dependents are skipped too), then carry on with the run."""
        return await self._continue(await self._owner(run_id), run_id, run_actions.skip(task_id))

    async def _owner(self, run_id: str) -> str:
        checked_id("run id", run_id)
        await self.wait_until_projected()
        project_id = self.project_of_run(run_id)
        if project_id is None:
            raise UnknownRun(f"no run {run_id!r}")
        return project_id

    async def _continue(
        self, project_id: str, run_id: str | None, action: run_actions.Continuation
    ) -> str:
        facts = await self.project(project_id)
        run_id = checked_id("run id", run_id) if run_id else facts.last_run
        if run_id is None:
            raise UnknownRun(f"project {project_id} has no run to resume")
        await check_repository(facts)
        recovered = self.supervisor.recovered(run_id)
        if (
            action is run_actions.RESUME
            and recovered is not None
            and (
                not recovered.task.done()
                or recovered.ctx.recorder.state.status not in action.allowed
            )
        ):
            # Start-up already resumed it (a crash left it unfinished), and it still runs or
            # has already ended (a run one event short of its end lands in milliseconds):
            # that is the resume asked for, so the first `plait resume` after a crash
            # succeeds. One that has failed again since is resumed again below.
            return run_id
        if self.supervisor.driving(run_id) is not None:
            raise RunAlreadyActive(f"run {run_id} is running in this process", run_id)
        if facts.active_run not in (None, run_id):
            raise RunAlreadyActive(f"run {facts.active_run} is active", facts.active_run)
        fence = await asyncio.to_thread(self.supervisor.leases.acquire, run_id)
        if fence is None:
            holder = await asyncio.to_thread(self.supervisor.leases.holder, run_id)
            raise RunAlreadyActive(f"run {run_id} is driven by another process ({holder})", run_id)
        try:
            return await self._resume_leased(facts, project_id, run_id, action)
        except BaseException:
            await asyncio.to_thread(self.supervisor.leases.release, run_id)
            raise

    async def _resume_leased(
        self, facts: ProjectFacts, project_id: str, run_id: str, action: run_actions.Continuation
    ) -> str:
        recorder = await self.supervisor.recorder(run_id)
        recorder.fence = self.supervisor.leases.fence(run_id)
        status = recorder.state.status
        if status not in action.allowed:
            raise NotResumable(f"run {run_id} is {status}: {action.needs}")
        try:
            then = action.events(recorder.state)  # refused here, before anything is recorded
        except ActionRefused as exc:
            raise NotResumable(str(exc)) from None
        plan = plan_from_mapping(recorder.plan)  # once: the launch below takes it as it is
        if action.runs_tasks:
            await self._agents(plan)
        if facts.active_run is None:
            try:
                await self.supervisor.append(
                    project_stream(project_id),
                    [RunStarted(project_id=project_id, run_id=run_id)],
                    expected=facts.version,
                    fenced=run_id,
                )
            except ConcurrencyError:
                raise RunAlreadyActive(f"project {project_id} changed; try again") from None
        if status in DRIVEN_RUN:
            await self.supervisor.reap_orphans(recorder)
            await adopt_finished_attempts(recorder, Git(Path(recorder.state.repo_path or ".")))
            await interrupt_tasks(recorder, "the process driving the run ended")
        await recorder.record(RunResumed(run_id=run_id, reason=action.name), *then)
        await self.supervisor.launch(project_id, run_id, recorder, plan=plan)
        return run_id

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
    "RepositoryChanged",
    "RunAlreadyActive",
    "SandboxUnavailable",
    "ServiceError",
    "UnknownProject",
    "UnknownRun",
    "UnknownTask",
]
