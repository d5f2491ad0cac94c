"""The plan as frozen values.

Constructing these directly checks nothing; `plait.domain.plan.parsing.parse_plan` and
`plan_from_mapping` (in `parsing`) are the checked way in, `to_dict` the way out.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from plait.domain.agents import SHELL, runner_names

# A runner: a preset name, or a custom argv template with "{prompt}" in an argument.
Agent = str | tuple[str, ...]

BUILTIN_AGENTS: Final = runner_names()
PROMPT_PLACEHOLDER: Final = "{prompt}"

DEFAULT_MAX_CONCURRENCY: Final = 3
DEFAULT_RETRIES: Final = 1
DEFAULT_TIMEOUT: Final = 3600


class OnTaskFailure(StrEnum):
    """What a task that fails (after its retries) does to its run."""

    STOP = "stop"  # the run ends after the batch (its green work on the run's branch)
    LAND = "land"  # the run goes on without it, skips its dependents and lands the rest


class Schedule(StrEnum):
    """When a task starts (`schedule:`)."""

    BATCH = "batch"  # batch by batch: a batch starts once the one before it landed
    READY = "ready"  # as soon as every task it depends on landed: no batch barriers


class Sandbox(StrEnum):
    """How a task's processes are confined (`sandbox:`); absent: not at all."""

    BWRAP = "bwrap"  # bubblewrap: only the task's directory, scratch and a private /tmp writable


@dataclass(frozen=True)
class Task:
    id: str
    title: str = ""  # empty means "same as the id"
    prompt: str | None = None
    run: str | None = None  # the shell runner's command line
    agent: Agent | None = None  # None: the plan's agent
    depends_on: tuple[str, ...] = ()
    files: tuple[str, ...] = ()  # hint: tasks touching the same paths never run side by side
    timeout: float | None = None  # None: the plan's timeout
    profile: str | None = None  # a named profile (its agent, model, env, limit)
    allow_no_change: bool | None = None  # None: the plan's setting
    estimate: float | None = None  # seconds it is expected to take (`plait plan`'s paths)

    def __post_init__(self) -> None:
        if not self.title:
            object.__setattr__(self, "title", self.id)  # frozen, so the default is set this way

    def to_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "title": self.title,
            "prompt": self.prompt,
            "run": self.run,
            "agent": _agent_to_json(self.agent),
            "depends_on": list(self.depends_on),
            "files": list(self.files),
            "timeout": self.timeout,
            "profile": self.profile,
            "allow_no_change": self.allow_no_change,
            "estimate": self.estimate,
        }


@dataclass(frozen=True)
class Profile:
    """A named way to run an agent: a preset (or template) plus a model, extra arguments,
    environment to add or drop, and a limit on how many of its tasks run at once."""

    name: str
    agent: Agent
    model: str | None = None
    args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()  # added; `${NAME}` is read from plait's environment
    drop_env: tuple[str, ...] = ()  # removed from the task's environment
    pass_env: tuple[str, ...] = ()  # provider variables let through (names or `PREFIX_`)
    max_concurrency: int | None = None
    program: str | None = None  # the CLI's path, instead of the preset's program on PATH

    def to_dict(self) -> dict[str, object]:
        return {
            "agent": _agent_to_json(self.agent),
            "model": self.model,
            "args": list(self.args),
            "env": dict(self.env),
            "drop_env": list(self.drop_env),
            "pass_env": list(self.pass_env),
            "max_concurrency": self.max_concurrency,
            "program": self.program,
        }


@dataclass(frozen=True)
class Batch:
    """Tasks that run together; a batch starts only after every earlier batch has landed."""

    batch_id: int
    task_ids: tuple[str, ...]
    can_parallel: bool

    def to_dict(self) -> dict[str, object]:
        return {
            "batch_id": self.batch_id,
            "task_ids": list(self.task_ids),
            "can_parallel": self.can_parallel,
        }


@dataclass(frozen=True)
class Plan:
    tasks: tuple[Task, ...]
    base: str | None = None  # None: the branch checked out when the run starts
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY
    retries: int = DEFAULT_RETRIES
    timeout: float = DEFAULT_TIMEOUT
    test_command: str | None = None
    test_timeout: float | None = None
    setup_command: str | None = None  # in every task worktree and the integration worktree
    test_setup_command: str | None = None  # in the integration worktree only, after setup
    copy_ignored: tuple[str, ...] = ()
    # The setups' outputs (e.g. .venv): ignored paths that survive the clean before a test run.
    keep_ignored: tuple[str, ...] = ()
    # Files whose content the setups depend on: while they are unchanged, a kept setup result
    # is reused from one tested commit to the next. Empty: the setups run before every test run.
    setup_inputs: tuple[str, ...] = ()
    junit_report: str | None = None  # where the test command writes a JUnit XML report
    agent: Agent = SHELL
    allow_red_base: bool = False
    batches: tuple[Batch, ...] | None = None  # None: derived from dependencies and files
    profiles: tuple[Profile, ...] = ()
    profile: str | None = None  # the default profile of tasks that name no agent or profile
    allow_no_change: bool | None = None  # None: only shell tasks may end without a change
    worktree_root: str | None = None  # None: plait's data directory (or --worktree-root)
    # stop: a failed task ends the run after its batch's green work landed on the run's
    # branch; land: the run goes on without it (its dependents skipped) and lands the rest.
    on_task_failure: OnTaskFailure = OnTaskFailure.STOP
    sandbox: Sandbox | None = None  # None: the task runs as the user, unconfined
    sandbox_network: bool = True  # with a sandbox: False cuts the task off every network
    schedule: Schedule = Schedule.BATCH

    @property
    def task_ids(self) -> tuple[str, ...]:
        return tuple(task.id for task in self.tasks)

    def task(self, task_id: str) -> Task:
        """The task with this id; KeyError if there is none."""
        for task in self.tasks:
            if task.id == task_id:
                return task
        raise KeyError(task_id)

    def profile_for(self, task: Task) -> Profile | None:
        name = task.profile or (self.profile if task.agent is None else None)
        for profile in self.profiles:
            if profile.name == name:
                return profile
        return None

    def agent_for(self, task: Task) -> Agent:
        if task.agent is not None:
            return task.agent
        profile = self.profile_for(task)
        return self.agent if profile is None else profile.agent

    def allows_no_change(self, task: Task) -> bool:
        """Whether a task that changes nothing has done its job (a shell task, by default)
        or has failed to (an agent that was asked for a change)."""
        for setting in (task.allow_no_change, self.allow_no_change):
            if setting is not None:
                return setting
        return self.agent_for(task) == SHELL

    def timeout_for(self, task: Task) -> float:
        return self.timeout if task.timeout is None else task.timeout

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready mapping that `parsing.plan_from_mapping` reads back into an equal plan."""
        return {
            "base": self.base,
            "max_concurrency": self.max_concurrency,
            "retries": self.retries,
            "timeout": self.timeout,
            "test_command": self.test_command,
            "test_timeout": self.test_timeout,
            "setup_command": self.setup_command,
            "test_setup_command": self.test_setup_command,
            "copy_ignored": list(self.copy_ignored),
            "keep_ignored": list(self.keep_ignored),
            "setup_inputs": list(self.setup_inputs),
            "junit_report": self.junit_report,
            "agent": _agent_to_json(self.agent),
            "allow_red_base": self.allow_red_base,
            "tasks": [task.to_dict() for task in self.tasks],
            "batches": None if self.batches is None else [b.to_dict() for b in self.batches],
            "profiles": {p.name: p.to_dict() for p in self.profiles} or None,
            "profile": self.profile,
            "allow_no_change": self.allow_no_change,
            "worktree_root": self.worktree_root,
            "on_task_failure": str(self.on_task_failure),
            "sandbox": None if self.sandbox is None else str(self.sandbox),
            "sandbox_network": self.sandbox_network,
            "schedule": str(self.schedule),
        }


def _agent_to_json(agent: Agent | None) -> str | list[str] | None:
    return list(agent) if isinstance(agent, tuple) else agent
