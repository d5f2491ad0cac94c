"""Build a checked Plan from an untrusted, already-decoded object (YAML, JSON, HTTP body).

Every problem is collected; one PlanError lists them all. Nothing else escapes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from enum import StrEnum
from typing import TypeVar

from plait.domain.agents import SHELL
from plait.domain.errors import PlanError
from plait.domain.plan.checks import batch_problems, graph_problems
from plait.domain.plan.fields import (
    MAX_ITEMS,
    MAX_NAME,
    MAX_TEXT,
    FieldReader,
    branch_name_problem,
    show,
    type_name,
)
from plait.domain.plan.model import (
    DEFAULT_MAX_CONCURRENCY,
    DEFAULT_RETRIES,
    DEFAULT_TIMEOUT,
    Agent,
    Batch,
    OnTaskFailure,
    Plan,
    Profile,
    Sandbox,
    Schedule,
    Task,
)
from plait.domain.plan.paths import (
    copy_path_problem,
    kept_path_problem,
    path_parts,
    relative_path_problem,
)
from plait.domain.plan.profiles import read_profiles
from plait.domain.plan.runners import check_runner, read_agent
from plait.domain.plan.schema import (
    BATCH_SCHEMA,
    MAX_BATCH_ID,
    MAX_CONCURRENCY_LIMIT,
    MAX_RETRIES,
    PLAN_SCHEMA,
    TASK_ID_PATTERN,
    TASK_SCHEMA,
)

# The fields each mapping may have: the tables of schema.py, which the OpenAPI document shows.
PLAN_FIELDS = frozenset(PLAN_SCHEMA)
TASK_FIELDS = frozenset(TASK_SCHEMA)
BATCH_FIELDS = frozenset(BATCH_SCHEMA)


def read_plan(obj: object, user_profiles: object = None) -> Plan:
    """`user_profiles`: the `profiles` mapping of the user's config file, if any."""
    if obj is None:
        raise PlanError(["the plan is empty"])
    if not isinstance(obj, Mapping):
        raise PlanError([f"the plan must be a mapping with a 'tasks' list, got {type_name(obj)}"])
    problems: list[str] = []
    fields = FieldReader(obj, None, problems)
    fields.reject_unknown(PLAN_FIELDS)
    agent = read_agent(fields)
    profiles = read_profiles(obj.get("profiles"), user_profiles, problems)
    settings = read_settings(fields, SHELL if agent is None else agent, profiles)
    check_test_fields(fields)
    # Without a valid plan agent there is nothing to check a task's runner against.
    task_default = SHELL if obj.get("agent") is None else agent
    if settings.profile is not None:
        default_profile = _named(profiles, settings.profile)
        task_default = None if default_profile is None else default_profile.agent
    tasks = read_tasks(obj.get("tasks"), task_default, profiles, problems)
    batches = read_batches(obj.get("batches"), problems)
    if batches is not None and settings.schedule is Schedule.READY:
        problems.append(
            "'batches' need 'schedule: batch': with 'schedule: ready' a task starts as soon as"
            " its dependencies landed, so there are no batches to give"
        )
    problems.extend(graph_problems(tasks))
    if batches is not None:
        problems.extend(batch_problems(batches, tasks))
    if problems:
        raise PlanError(problems)
    return replace(settings, tasks=tasks, batches=batches)


def read_settings(fields: FieldReader, agent: Agent, profiles: tuple[Profile, ...] = ()) -> Plan:
    """Everything but the tasks and batches, as a task-less Plan."""
    profile = read_profile_name(fields, profiles)
    worktree_root = fields.text("worktree_root")
    if worktree_root is not None and not worktree_root.startswith("/"):
        fields.problem(f"'worktree_root' must be an absolute path, got {show(worktree_root)}")
    return Plan(
        tasks=(),
        base=read_base(fields),
        max_concurrency=fields.integer(
            "max_concurrency", low=1, high=MAX_CONCURRENCY_LIMIT, default=DEFAULT_MAX_CONCURRENCY
        ),
        retries=fields.integer("retries", low=0, high=MAX_RETRIES, default=DEFAULT_RETRIES),
        timeout=fields.seconds("timeout") or DEFAULT_TIMEOUT,
        test_command=fields.text("test_command", max_len=MAX_TEXT),
        test_timeout=fields.seconds("test_timeout"),
        setup_command=fields.text("setup_command", max_len=MAX_TEXT),
        test_setup_command=fields.text("test_setup_command", max_len=MAX_TEXT),
        copy_ignored=fields.text_list("copy_ignored", what="paths", check=copy_path_problem) or (),
        keep_ignored=fields.text_list("keep_ignored", what="paths", check=kept_path_problem) or (),
        setup_inputs=fields.text_list("setup_inputs", what="paths", check=input_path_problem) or (),
        junit_report=read_junit_report(fields),
        agent=agent,
        allow_red_base=fields.flag("allow_red_base", default=False),
        profiles=profiles,
        profile=profile,
        allow_no_change=read_optional_flag(fields, "allow_no_change"),
        worktree_root=worktree_root,
        on_task_failure=read_on_task_failure(fields),
        sandbox=read_sandbox(fields),
        sandbox_network=read_sandbox_network(fields),
        schedule=read_schedule(fields),
    )


def read_schedule(fields: FieldReader) -> Schedule:
    return read_choice(fields, "schedule", Schedule) or Schedule.BATCH


def read_sandbox(fields: FieldReader) -> Sandbox | None:
    return read_choice(fields, "sandbox", Sandbox)


C = TypeVar("C", bound=StrEnum)


def read_choice(fields: FieldReader, key: str, kind: type[C]) -> C | None:
    """One of `kind`'s values, or None when the field is absent or names none of them (then
    the problem lists the choices)."""
    value = fields.text(key)
    if value is None:
        return None
    try:
        return kind(value)
    except ValueError:
        choices = " or ".join(repr(str(c)) for c in kind)
        fields.problem(f"'{key}' must be {choices}, got {show(value)}")
        return None


def read_sandbox_network(fields: FieldReader) -> bool:
    network = fields.flag("sandbox_network", default=True)
    if not network and fields.get("sandbox") is None:
        fields.problem("'sandbox_network: false' needs a sandbox ('sandbox: bwrap')")
    return network


def read_on_task_failure(fields: FieldReader) -> OnTaskFailure:
    return read_choice(fields, "on_task_failure", OnTaskFailure) or OnTaskFailure.STOP


def input_path_problem(path: str) -> str | None:
    problem = relative_path_problem(path)
    if problem is None and ".git" in path_parts(path):
        problem = "must not be inside '.git'"
    return problem


def read_junit_report(fields: FieldReader) -> str | None:
    report = fields.text("junit_report")
    why = None if report is None else copy_path_problem(report)
    if why is not None:
        fields.problem(f"'junit_report' {why}")
        return None
    return report


def check_test_fields(fields: FieldReader) -> None:
    """Fields that only mean something to a test command."""
    if fields.get("test_command") is not None:
        return
    for key in ("test_setup_command", "junit_report"):
        if fields.get(key) is not None:
            fields.problem(f"{key!r} needs a 'test_command' to serve")


def read_profile_name(fields: FieldReader, profiles: tuple[Profile, ...]) -> str | None:
    name = fields.text("profile")
    if name is not None and _named(profiles, name) is None:
        known = ", ".join(p.name for p in profiles) or "none are defined"
        fields.problem(f"unknown profile {show(name)} (profiles: {known})")
    return name


def read_optional_flag(fields: FieldReader, key: str) -> bool | None:
    return None if fields.get(key) is None else fields.flag(key, default=False)


def _named(profiles: tuple[Profile, ...], name: str) -> Profile | None:
    return next((p for p in profiles if p.name == name), None)


def read_base(fields: FieldReader) -> str | None:
    base = fields.text("base")
    why = None if base is None else branch_name_problem(base)
    if why is not None:
        fields.problem(f"'base' {why}")
    return base


def read_tasks(
    raw: object, plan_agent: Agent | None, profiles: tuple[Profile, ...], problems: list[str]
) -> tuple[Task, ...]:
    if raw is None or raw == []:
        problems.append("the plan has no tasks")
        return ()
    if not isinstance(raw, list | tuple):
        problems.append(f"'tasks' must be a list of tasks, got {type_name(raw)}")
        return ()
    if len(raw) > MAX_ITEMS:
        problems.append(f"the plan has {len(raw)} tasks; the limit is {MAX_ITEMS}")
        return ()
    tasks = (
        read_task(item, number, plan_agent, profiles, problems)
        for number, item in enumerate(raw, 1)
    )
    return tuple(task for task in tasks if task is not None)


def read_task(
    raw: object,
    number: int,
    plan_agent: Agent | None,
    profiles: tuple[Profile, ...],
    problems: list[str],
) -> Task | None:
    """The task, or None if it has no usable id (its other problems are still reported)."""
    if not isinstance(raw, Mapping):
        problems.append(f"task #{number}: must be a mapping of fields, got {type_name(raw)}")
        return None
    task_id = raw.get("id")
    owner = f"task {show(task_id)}" if isinstance(task_id, str) else f"task #{number}"
    fields = FieldReader(raw, owner, problems)
    valid_id = read_task_id(fields)
    fields.reject_unknown(TASK_FIELDS)
    agent = read_agent(fields)
    profile_name = read_profile_name(fields, profiles)
    profile = None if profile_name is None else _named(profiles, profile_name)
    if profile_name is not None and raw.get("agent") is not None:
        fields.problem("give 'agent' or 'profile', not both (a profile names its agent)")
    task = Task(
        id=valid_id or "",
        title=fields.text("title") or "",
        prompt=fields.text("prompt", max_len=MAX_TEXT),
        run=fields.text("run", max_len=MAX_TEXT),
        agent=agent,
        depends_on=fields.text_list("depends_on", what="task ids") or (),
        files=fields.text_list("files", what="paths", check=relative_path_problem) or (),
        timeout=fields.seconds("timeout"),
        profile=profile_name,
        allow_no_change=read_optional_flag(fields, "allow_no_change"),
        estimate=fields.seconds("estimate"),
    )
    if profile is not None:
        check_runner(fields, profile.agent)
    elif profile_name is None and (raw.get("agent") is None or agent is not None):
        # An invalid agent or profile is reported already.
        check_runner(fields, plan_agent if raw.get("agent") is None else agent)
    return task if valid_id else None


def read_task_id(fields: FieldReader) -> str | None:
    value = fields.get("id")
    if value is None:
        fields.problem("missing 'id'")
        return None
    task_id = fields.check_text("'id'", value, MAX_NAME)
    if task_id is not None and not TASK_ID_PATTERN.fullmatch(task_id):
        fields.problem(f"id must match ^{TASK_ID_PATTERN.pattern}$")
        return None
    return task_id


def read_batches(raw: object, problems: list[str]) -> tuple[Batch, ...] | None:
    """Explicit batches, or None when the plan leaves batching to plait."""
    if raw is None:
        return None
    if not isinstance(raw, list | tuple):
        problems.append(f"'batches' must be a list of batches, got {type_name(raw)}")
        return None
    if len(raw) > MAX_ITEMS:
        problems.append(f"the plan has {len(raw)} batches; the limit is {MAX_ITEMS}")
        return None
    batches = (read_batch(item, number, problems) for number, item in enumerate(raw, 1))
    return tuple(batch for batch in batches if batch is not None)


def read_batch(raw: object, number: int, problems: list[str]) -> Batch | None:
    if not isinstance(raw, Mapping):
        problems.append(
            f"batch #{number}: must be a mapping with batch_id, task_ids and can_parallel,"
            f" got {type_name(raw)}"
        )
        return None
    value = raw.get("batch_id")
    usable = isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_BATCH_ID
    fields = FieldReader(raw, f"batch {value}" if usable else f"batch #{number}", problems)
    fields.reject_unknown(BATCH_FIELDS)
    batch_id = fields.integer("batch_id", low=1, high=MAX_BATCH_ID)
    if value is None:
        fields.problem("missing 'batch_id'")
    if raw.get("task_ids") is None:
        fields.problem("missing 'task_ids'")
    task_ids = fields.text_list("task_ids", what="task ids")
    can_parallel = fields.flag("can_parallel", default=len(task_ids or ()) > 1)
    if batch_id is None or task_ids is None or raw.get("task_ids") is None:
        return None  # reported above; its tasks will also show up as "in no batch"
    return Batch(batch_id, task_ids, can_parallel)
