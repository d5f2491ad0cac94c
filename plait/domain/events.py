"""Domain events: what happened, in the past tense, as frozen dataclasses.

Two streams carry them (see ARCHITECTURE.md, "Streams and events"):

- the project stream (`project-<id>`): ProjectRegistered, ProjectDeleted, PlanAccepted,
  RunStarted, RunEnded;
- the run stream (`run-<id>`): everything else. Every run-stream event carries `run_id`
  and, where it applies, `batch_id`, `task_id`, `worktree_id` and `attempt`.

Storage sees an event as `(TYPE, SCHEMA_VERSION, data)`; `to_data` and `from_stored`
convert. Stored types are never tied to Python class paths: `TYPE` is a plain name and
the registry maps it back. When a payload changes shape, bump the class's
`SCHEMA_VERSION` and register an upcaster for `(TYPE, old_version)` in `UPCASTERS`;
old rows are upcast on load, never rewritten. A field added with a default is no change of
shape: a stored payload without it loads with the default, so it needs no new version.

Sequence fields accept any sequence and are stored as tuples, so events stay immutable;
`to_data` turns them back into JSON lists.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from plait.domain.errors import DomainError

Data = dict[str, Any]
Upcaster = Callable[[Data], Data]

MAX_TEST_IDS = 1000  # failing test ids kept in one event; the count says how many there were


class UnknownEventType(DomainError):
    """A stored event type that no event class is registered for."""

    def __init__(self, type_name: str) -> None:
        self.type_name = type_name
        super().__init__(f"unknown event type {type_name!r}")


class EventSchemaError(DomainError):
    """A stored payload that cannot be loaded: no upcaster, a newer schema, a missing field."""


# --- base classes -------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class DomainEvent:
    """Base of every event. Subclasses get `TYPE` = their class name automatically."""

    TYPE: ClassVar[str] = "DomainEvent"
    SCHEMA_VERSION: ClassVar[int] = 1
    # TestsPassed & co. would otherwise be collected by pytest in any test that imports them.
    __test__: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.TYPE = cls.__name__

    def __post_init__(self) -> None:
        # Frozen events must not share mutable sequences with their caller; a bare str is
        # refused because it is a Sequence[str] and would silently become a tuple of letters.
        for spec in dataclasses.fields(self):
            value = getattr(self, spec.name)
            if isinstance(value, list):
                object.__setattr__(self, spec.name, tuple(value))
            elif isinstance(value, str) and "Sequence[" in str(spec.type):
                raise TypeError(f"{type(self).__name__}.{spec.name} needs a sequence, not a str")


@dataclass(frozen=True, kw_only=True)
class ProjectEvent(DomainEvent):
    """An event of a project stream."""

    project_id: str


@dataclass(frozen=True, kw_only=True)
class RunEvent(DomainEvent):
    """An event of a run stream."""

    run_id: str


# --- project stream -----------------------------------------------------------------------


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


# --- run stream: the run as a whole -------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class RunCreated(RunEvent):
    """The run's plan, fixed at creation. Each batch is {batch_id, task_ids, can_parallel}."""

    project_id: str
    plan: dict[str, Any]
    batches: Sequence[Mapping[str, Any]]
    base_branch: str
    base_commit: str
    repo_path: str
    max_concurrency: int = 3
    # This repository's worktree root for the run ("": a run of an older plait, whose
    # worktrees are in <git common dir>/plait-worktrees).
    worktree_root: str = ""


@dataclass(frozen=True, kw_only=True)
class ExecutionModeSelected(RunEvent):
    mode: str
    reason: str = ""


@dataclass(frozen=True, kw_only=True)
class BaselineTested(RunEvent):
    """The test command on the base commit, before any task ran."""

    command: str
    passed: bool
    exit_code: int | None
    output_tail: str = ""
    allowed: bool = False
    timed_out: bool = False
    failed_tests: Sequence[str] = ()
    failed_count: int | None = None
    # Why the baseline could not judge anything: the test command or a setup could not run,
    # or the tests read files of the user's checkout (`outside_reads`). The run is refused.
    problem: str = ""
    outside_reads: Sequence[str] = ()
    setup: str = ""
    duration: float = 0.0
    log_path: str = ""  # the whole output, where the driving process kept it


@dataclass(frozen=True, kw_only=True)
class StopRequested(RunEvent):
    reason: str = ""


@dataclass(frozen=True, kw_only=True)
class RunCompleted(RunEvent):
    """The run's tested result `landed_commit` is on `landed_on`: the base branch when the
    base moved (or already had it), else the run's result branch, kept there for
    `plait land` because of `not_landed_reason`."""

    landed_commit: str
    landed_on: str
    land_command: str | None = None
    not_landed_reason: str = ""


@dataclass(frozen=True, kw_only=True)
class RunFailed(RunEvent):
    error: str


@dataclass(frozen=True, kw_only=True)
class RunStopped(RunEvent):
    reason: str = ""


@dataclass(frozen=True, kw_only=True)
class RunResumed(RunEvent):
    reason: str = ""


@dataclass(frozen=True, kw_only=True)
class LandRequested(RunEvent):
    """`plait land`: run no more tasks; land the tested result with the run's own landing."""

    reason: str = ""


# --- run stream: batches ------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class BatchStarted(RunEvent):
    batch_id: int
    task_ids: Sequence[str]
    can_parallel: bool


@dataclass(frozen=True, kw_only=True)
class MergeStarted(RunEvent):
    batch_id: int
    onto: str


@dataclass(frozen=True, kw_only=True)
class TestsPassed(RunEvent):
    batch_id: int
    commit: str
    command: str
    exit_code: int | None
    duration: float
    output_tail: str = ""
    setup: str = ""  # "ran" or "reused" (the integration worktree's setups), "" without any
    log_path: str = ""  # the whole output, where the driving process kept it


@dataclass(frozen=True, kw_only=True)
class TestsFailed(RunEvent):
    """Red: the tests failed, timed out (`timed_out`, whatever the exit status), or could
    not run at all (`problem`: a setup failed, the command was not found)."""

    batch_id: int
    commit: str
    command: str
    exit_code: int | None
    duration: float
    output_tail: str = ""
    timed_out: bool = False
    # The failing test ids of the JUnit report (at most MAX_TEST_IDS of them) and how many
    # there were; failed_count is None when there was no report.
    failed_tests: Sequence[str] = ()
    failed_count: int | None = None
    problem: str = ""
    setup: str = ""
    log_path: str = ""


@dataclass(frozen=True, kw_only=True)
class TestsFlaky(RunEvent):
    """Tests failed once on `commit` and passed on a re-run: reported, nobody blamed."""

    batch_id: int
    commit: str
    command: str
    output_tail: str = ""
    log_path: str = ""
    failed_tests: Sequence[str] = ()  # of the red run, from its JUnit report


@dataclass(frozen=True, kw_only=True)
class BatchLanded(RunEvent):
    """The integration ref moved from `before` to `after` (compare-and-swap)."""

    batch_id: int
    before: str
    after: str


@dataclass(frozen=True, kw_only=True)
class BatchCompleted(RunEvent):
    batch_id: int
    merge_status: str
    duration: float = 0.0


@dataclass(frozen=True, kw_only=True)
class BatchFailed(RunEvent):
    batch_id: int
    merge_status: str
    errors: Sequence[str] = ()
    duration: float = 0.0


@dataclass(frozen=True, kw_only=True)
class FellBackToSequential(RunEvent):
    """`batch_id` None: the whole run falls back; otherwise the listed tasks of one batch."""

    batch_id: int | None = None
    reason: str = ""
    task_ids: Sequence[str] = ()


# --- run stream: tasks and their worktrees ------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class WorktreeCreated(RunEvent):
    batch_id: int
    task_id: str
    worktree_id: str
    attempt: int
    path: str
    branch: str
    base_commit: str


@dataclass(frozen=True, kw_only=True)
class TaskStarted(RunEvent):
    batch_id: int
    task_id: str
    worktree_id: str
    attempt: int
    command: Sequence[str]
    agent: str = ""  # the preset ("" for the shell or a custom template)
    agent_version: str = ""  # as the CLI reported it before the run
    profile: str = ""
    model: str = ""
    log_path: str = ""  # the attempt's whole output, where the driving process keeps it


@dataclass(frozen=True, kw_only=True)
class AgentReported(RunEvent):
    """What the agent CLI said of its own session, from its structured output: its verdict
    (an error even when it exited 0), its model, session, tokens and cost."""

    batch_id: int
    task_id: str
    worktree_id: str
    attempt: int
    agent: str
    model: str = ""
    session_id: str = ""
    tokens_in: int | None = None
    tokens_out: int | None = None
    cost_usd: float | None = None  # where the CLI reports it
    error: str = ""  # the CLI's own reason, when it reports a failure


@dataclass(frozen=True, kw_only=True)
class TaskChangedNothing(RunEvent):
    """The task exited 0 without changing a file, where the plan does not allow that (see
    `allow_no_change`; an allowed one is a TaskSucceeded without a commit). Not merged,
    not retried: an agent that did nothing did not do its job."""

    batch_id: int
    task_id: str
    worktree_id: str
    attempt: int
    duration: float = 0.0


@dataclass(frozen=True, kw_only=True)
class TaskOutput(RunEvent):
    """One bounded chunk of a task's output."""

    batch_id: int
    task_id: str
    worktree_id: str
    attempt: int
    stream: Literal["stdout", "stderr"]
    text: str


@dataclass(frozen=True, kw_only=True)
class TaskSucceeded(RunEvent):
    batch_id: int
    task_id: str
    worktree_id: str
    attempt: int
    commit: str | None
    changed_files: Sequence[str] = ()
    duration: float = 0.0


@dataclass(frozen=True, kw_only=True)
class TaskFailed(RunEvent):
    batch_id: int
    task_id: str
    worktree_id: str
    attempt: int
    exit_code: int | None
    error: str
    will_retry: bool = False
    duration: float = 0.0
    timed_out: bool = False  # plait stopped it: a failure whatever it exited with


@dataclass(frozen=True, kw_only=True)
class TaskInterrupted(RunEvent):
    """The task's process was stopped (stop or crash); it is re-run on resume."""

    batch_id: int
    task_id: str
    worktree_id: str
    attempt: int
    reason: str = ""


@dataclass(frozen=True, kw_only=True)
class BranchMerged(RunEvent):
    batch_id: int
    task_id: str
    worktree_id: str
    merge_commit: str


@dataclass(frozen=True, kw_only=True)
class MergeConflicted(RunEvent):
    batch_id: int
    task_id: str
    worktree_id: str
    files: Sequence[str] = ()


@dataclass(frozen=True, kw_only=True)
class ConflictResolutionStarted(RunEvent):
    """The task's own agent resolves its conflict with the new tip: the merge is checked out
    in `worktree_id` with the markers in `files`; `session_id` is resumed where the CLI can."""

    batch_id: int
    task_id: str
    worktree_id: str
    attempt: int
    onto: str
    files: Sequence[str] = ()
    session_id: str = ""  # "" : a new session
    log_path: str = ""


@dataclass(frozen=True, kw_only=True)
class ConflictResolved(RunEvent):
    """The agent's resolution, committed as a merge of the task's branch and the tip."""

    batch_id: int
    task_id: str
    worktree_id: str
    attempt: int
    commit: str
    duration: float = 0.0


@dataclass(frozen=True, kw_only=True)
class ConflictResolutionFailed(RunEvent):
    """The agent could not resolve the conflict; the task is re-run on the new tip."""

    batch_id: int
    task_id: str
    worktree_id: str
    attempt: int
    reason: str


@dataclass(frozen=True, kw_only=True)
class CulpritFound(RunEvent):
    """Bisecting the merge chain blamed this task's branch; it is ejected from the batch."""

    batch_id: int
    task_id: str
    output_tail: str = ""
    # The tests that fail with this branch and did not without it (from JUnit reports).
    broke_tests: Sequence[str] = ()


@dataclass(frozen=True, kw_only=True)
class TaskRequeued(RunEvent):
    """A task queued to run again: a conflicted one on the new integration tip, a failed
    one when its run resumes, any unlanded one a user retries."""

    batch_id: int
    task_id: str
    reason: str = ""


@dataclass(frozen=True, kw_only=True)
class TaskSkipped(RunEvent):
    """The task will not run in this run: a task it depends on did not land, a user
    skipped it, or the run was landed without it."""

    task_id: str
    reason: str
    batch_id: int | None = None


@dataclass(frozen=True, kw_only=True)
class WorktreeRemoved(RunEvent):
    task_id: str
    worktree_id: str
    batch_id: int | None = None


@dataclass(frozen=True, kw_only=True)
class WorkKept(RunEvent):
    """Unlanded work left on `branch` for the user instead of being deleted. `ref` and
    `commit`: an attempt's work (what it left uncommitted, and commits it made that its
    result does not reach) committed to `refs/plait/kept/<run>/<task>/<attempt>`."""

    task_id: str
    branch: str
    reason: str = ""
    worktree_id: str | None = None
    batch_id: int | None = None
    attempt: int | None = None
    ref: str = ""
    commit: str = ""


# --- registry and serialisation -----------------------------------------------------------

PROJECT_EVENTS: tuple[type[ProjectEvent], ...] = (
    ProjectRegistered,
    ProjectDeleted,
    PlanAccepted,
    RunStarted,
    RunEnded,
)

RUN_EVENTS: tuple[type[RunEvent], ...] = (
    RunCreated,
    ExecutionModeSelected,
    BaselineTested,
    BatchStarted,
    WorktreeCreated,
    TaskStarted,
    TaskOutput,
    AgentReported,
    TaskSucceeded,
    TaskChangedNothing,
    TaskFailed,
    TaskInterrupted,
    MergeStarted,
    BranchMerged,
    MergeConflicted,
    ConflictResolutionStarted,
    ConflictResolved,
    ConflictResolutionFailed,
    TestsPassed,
    TestsFailed,
    TestsFlaky,
    CulpritFound,
    BatchLanded,
    BatchCompleted,
    BatchFailed,
    FellBackToSequential,
    TaskRequeued,
    TaskSkipped,
    WorktreeRemoved,
    WorkKept,
    StopRequested,
    RunCompleted,
    RunFailed,
    RunStopped,
    RunResumed,
    LandRequested,
)


def _registry(classes: Iterable[type[DomainEvent]]) -> dict[str, type[DomainEvent]]:
    registry: dict[str, type[DomainEvent]] = {}
    for cls in classes:
        if cls.TYPE in registry:
            raise RuntimeError(f"event type {cls.TYPE!r} registered twice")
        registry[cls.TYPE] = cls
    return registry


EVENT_TYPES: Mapping[str, type[DomainEvent]] = _registry((*PROJECT_EVENTS, *RUN_EVENTS))

# (TYPE, from_version) -> function turning a `from_version` payload into `from_version + 1`.
UPCASTERS: dict[tuple[str, int], Upcaster] = {}


def to_data(event: DomainEvent) -> Data:
    """The event's payload as JSON-safe data (tuples become lists); TYPE is not included."""
    return {spec.name: _jsonable(getattr(event, spec.name)) for spec in dataclasses.fields(event)}


def from_stored(type: str, schema_version: int, data: Mapping[str, Any]) -> DomainEvent:
    """Rebuild an event from its stored type, schema version and payload.

    Older payloads are upcast first. Keys the class does not know are ignored (a newer
    writer may add fields); missing fields that have defaults take them.
    """
    cls = EVENT_TYPES.get(type)
    if cls is None:
        raise UnknownEventType(type)
    payload = upcast(type, schema_version, data, cls.SCHEMA_VERSION)
    known = {spec.name for spec in dataclasses.fields(cls)}
    try:
        return cls(**{key: value for key, value in payload.items() if key in known})
    except TypeError as error:
        raise EventSchemaError(f"cannot load {type} v{schema_version}: {error}") from error


def upcast(type_name: str, from_version: int, data: Mapping[str, Any], to_version: int) -> Data:
    """Apply the registered upcasters one version at a time up to `to_version`."""
    if from_version > to_version:
        raise EventSchemaError(
            f"{type_name} v{from_version} is newer than this code's v{to_version}"
        )
    payload = dict(data)
    for version in range(from_version, to_version):
        upcaster = UPCASTERS.get((type_name, version))
        if upcaster is None:
            raise EventSchemaError(f"no upcaster for {type_name} v{version} -> v{version + 1}")
        payload = upcaster(payload)
    return payload


def _jsonable(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    if isinstance(value, Mapping):
        return {str(key): _jsonable(item) for key, item in value.items()}
    return value
