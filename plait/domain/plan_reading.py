"""Build a checked Plan from an untrusted, already-decoded object (YAML, JSON, HTTP body).

Every problem is collected; one PlanError lists them all. Nothing else escapes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace

from plait.domain.errors import PlanError
from plait.domain.plan_checks import batch_problems, graph_problems
from plait.domain.plan_fields import (
    MAX_ITEMS,
    MAX_NAME,
    MAX_TEXT,
    FieldReader,
    branch_name_problem,
    show,
    type_name,
)
from plait.domain.plan_model import (
    BUILTIN_AGENTS,
    DEFAULT_MAX_CONCURRENCY,
    DEFAULT_RETRIES,
    DEFAULT_TIMEOUT,
    PROMPT_PLACEHOLDER,
    SHELL,
    Agent,
    Batch,
    Plan,
    Task,
)
from plait.domain.plan_paths import (
    copy_path_problem,
    kept_path_problem,
    path_parts,
    relative_path_problem,
)

# Safe as a git branch component and as a directory name: no dots, slashes or leading dash.
TASK_ID_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
MAX_CONCURRENCY_LIMIT = 64
MAX_RETRIES = 100
MAX_BATCH_ID = 1_000_000_000

PLAN_FIELDS = frozenset(
    {
        "base",
        "max_concurrency",
        "retries",
        "timeout",
        "test_command",
        "test_timeout",
        "setup_command",
        "test_setup_command",
        "copy_ignored",
        "keep_ignored",
        "setup_inputs",
        "junit_report",
        "agent",
        "allow_red_base",
        "tasks",
        "batches",
    }
)
TASK_FIELDS = frozenset({"id", "title", "prompt", "run", "agent", "depends_on", "files", "timeout"})
BATCH_FIELDS = frozenset({"batch_id", "task_ids", "can_parallel"})


def read_plan(obj: object) -> Plan:
    if obj is None:
        raise PlanError(["the plan is empty"])
    if not isinstance(obj, Mapping):
        raise PlanError([f"the plan must be a mapping with a 'tasks' list, got {type_name(obj)}"])
    problems: list[str] = []
    fields = FieldReader(obj, None, problems)
    fields.reject_unknown(PLAN_FIELDS)
    agent = read_agent(fields)
    settings = read_settings(fields, SHELL if agent is None else agent)
    check_test_fields(fields)
    # Without a valid plan agent there is nothing to check a task's runner against.
    task_default = SHELL if obj.get("agent") is None else agent
    tasks = read_tasks(obj.get("tasks"), task_default, problems)
    batches = read_batches(obj.get("batches"), problems)
    problems.extend(graph_problems(tasks))
    if batches is not None:
        problems.extend(batch_problems(batches, tasks))
    if problems:
        raise PlanError(problems)
    return replace(settings, tasks=tasks, batches=batches)


def read_settings(fields: FieldReader, agent: Agent) -> Plan:
    """Everything but the tasks and batches, as a task-less Plan."""
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
        setup_inputs=fields.text_list("setup_inputs", what="paths", check=input_path_problem)
        or (),
        junit_report=read_junit_report(fields),
        agent=agent,
        allow_red_base=fields.flag("allow_red_base", default=False),
    )


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


def read_base(fields: FieldReader) -> str | None:
    base = fields.text("base")
    why = None if base is None else branch_name_problem(base)
    if why is not None:
        fields.problem(f"'base' {why}")
    return base


def read_agent(fields: FieldReader) -> Agent | None:
    """A preset name or a custom argv template; None if absent or invalid (already reported)."""
    value = fields.get("agent")
    if value is None:
        return None
    if isinstance(value, str):
        if value in BUILTIN_AGENTS:
            return value
        fields.problem(
            f"unknown agent {show(value)}: use one of {', '.join(BUILTIN_AGENTS)},"
            f" or a list of argv strings with {PROMPT_PLACEHOLDER!r} in one of them"
        )
        return None
    template = fields.text_list("agent", what="argv strings", max_len=MAX_TEXT)
    if template is None or not isinstance(value, list | tuple) or len(template) != len(value):
        return None  # the reader has said what is wrong
    if not any(PROMPT_PLACEHOLDER in arg for arg in template):
        fields.problem(f"a custom 'agent' must have {PROMPT_PLACEHOLDER!r} in one of its arguments")
        return None
    return template


def read_tasks(raw: object, plan_agent: Agent | None, problems: list[str]) -> tuple[Task, ...]:
    if raw is None or raw == []:
        problems.append("the plan has no tasks")
        return ()
    if not isinstance(raw, list | tuple):
        problems.append(f"'tasks' must be a list of tasks, got {type_name(raw)}")
        return ()
    if len(raw) > MAX_ITEMS:
        problems.append(f"the plan has {len(raw)} tasks; the limit is {MAX_ITEMS}")
        return ()
    tasks = (read_task(item, number, plan_agent, problems) for number, item in enumerate(raw, 1))
    return tuple(task for task in tasks if task is not None)


def read_task(
    raw: object, number: int, plan_agent: Agent | None, problems: list[str]
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
    task = Task(
        id=valid_id or "",
        title=fields.text("title") or "",
        prompt=fields.text("prompt", max_len=MAX_TEXT),
        run=fields.text("run", max_len=MAX_TEXT),
        agent=agent,
        depends_on=fields.text_list("depends_on", what="task ids") or (),
        files=fields.text_list("files", what="paths", check=relative_path_problem) or (),
        timeout=fields.seconds("timeout"),
    )
    if raw.get("agent") is None or agent is not None:  # an invalid agent is reported already
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


def check_runner(fields: FieldReader, agent: Agent | None) -> None:
    """The shell runner needs `run`; every agent needs a `prompt` and has no use for `run`."""
    if agent is None:
        return  # the plan's agent is invalid and reported; no runner to check against
    has_run = fields.get("run") is not None
    if agent == SHELL:
        if not has_run:
            fields.problem("the shell runner needs a 'run' command")
        return
    name = show(agent) if isinstance(agent, str) else "the custom agent"
    if fields.get("prompt") is None:
        fields.problem(f"agent {name} needs a 'prompt'")
    if has_run:
        fields.problem(f"'run' is only for the shell runner, but this task's agent is {name}")


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
