"""Reading plans from YAML, JSON and decoded objects; every refusal names its reason."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from plait.domain.errors import PlanError
from plait.domain.plan.batching import plan_batches
from plait.domain.plan.model import Batch, Plan, Task
from plait.domain.plan.parsing import parse_plan, plan_from_mapping

FULL_PLAN = """
base: main
max_concurrency: 4
retries: 2
timeout: 900
test_command: pytest -q
test_timeout: 1800
setup_command: pip install -e .
copy_ignored: [".env", "config/local.toml"]
agent: claude
allow_red_base: true
tasks:
  - id: parser
    title: Add a parser
    prompt: Write src/parser.py
    files: [src/parser.py]
    timeout: 600
  - id: cli
    prompt: Wire the parser into the CLI
    depends_on: [parser]
    agent: ["myagent", "--msg", "{prompt}"]
  - id: fmt
    run: ruff format .
    agent: shell
"""


def read(source: object) -> Plan:
    """Text goes through the parser, anything else is taken as already decoded."""
    return parse_plan(source) if isinstance(source, str) else plan_from_mapping(source)


def problems(source: object) -> list[str]:
    """The problems a plan is refused for; fails the test if it is accepted."""
    with pytest.raises(PlanError) as refused:
        read(source)
    return refused.value.problems


def shell_plan(*tasks: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """A mapping plan whose tasks default to the shell runner with a harmless command."""
    return {**fields, "tasks": [{"run": "true", **task} for task in tasks]}


# --- accepted plans ---------------------------------------------------------------


def test_a_full_yaml_plan_reads_every_field() -> None:
    plan = parse_plan(FULL_PLAN)

    assert plan.base == "main"
    assert (plan.max_concurrency, plan.retries, plan.timeout) == (4, 2, 900)
    assert (plan.test_command, plan.test_timeout) == ("pytest -q", 1800)
    assert plan.setup_command == "pip install -e ."
    assert plan.copy_ignored == (".env", "config/local.toml")
    assert plan.agent == "claude"
    assert plan.allow_red_base is True
    assert plan.task_ids == ("parser", "cli", "fmt")
    assert plan.task("parser") == Task(
        id="parser",
        title="Add a parser",
        prompt="Write src/parser.py",
        files=("src/parser.py",),
        timeout=600,
    )
    assert plan.task("cli").depends_on == ("parser",)
    assert plan.agent_for(plan.task("cli")) == ("myagent", "--msg", "{prompt}")
    assert plan.agent_for(plan.task("fmt")) == "shell"
    assert plan.timeout_for(plan.task("parser")) == 600
    assert plan.timeout_for(plan.task("fmt")) == 900


def test_a_minimal_plan_gets_the_documented_defaults() -> None:
    plan = parse_plan("tasks:\n  - id: only\n    run: make\n")

    assert plan == Plan(tasks=(Task(id="only", title="only", run="make"),))
    assert plan.base is None
    assert (plan.max_concurrency, plan.retries, plan.timeout) == (3, 1, 3600)
    assert plan.agent == "shell"
    assert plan.allow_red_base is False
    assert plan.batches is None


def test_a_task_title_defaults_to_its_id() -> None:
    assert parse_plan("tasks: [{id: a, run: x}]").task("a").title == "a"


def test_json_text_reads_the_same_as_yaml() -> None:
    as_json = json.dumps(parse_plan(FULL_PLAN).to_dict(), indent=2)

    assert parse_plan(as_json) == parse_plan(FULL_PLAN)


def test_a_yaml_flow_mapping_is_not_mistaken_for_broken_json() -> None:
    plan = parse_plan("{tasks: [{id: a, run: make}]}")

    assert plan.task_ids == ("a",)


def test_null_means_the_same_as_leaving_a_field_out() -> None:
    plan = plan_from_mapping(
        shell_plan({"id": "a", "depends_on": None, "title": None}, base=None, retries=None)
    )

    assert plan == Plan(tasks=(Task(id="a", run="true"),))


def test_to_dict_and_from_dict_round_trip_losslessly() -> None:
    plan = parse_plan(FULL_PLAN)

    stored = json.loads(json.dumps(plan.to_dict()))

    assert plan_from_mapping(stored) == plan


def test_explicit_batches_round_trip_too() -> None:
    plan = plan_from_mapping(
        shell_plan(
            {"id": "a"},
            {"id": "b"},
            {"id": "c", "depends_on": ["a", "b"]},
            batches=[
                {"batch_id": 1, "task_ids": ["a", "b"], "can_parallel": True},
                {"batch_id": 2, "task_ids": ["c"], "can_parallel": False},
            ],
        )
    )

    assert plan.batches == (Batch(1, ("a", "b"), True), Batch(2, ("c",), False))
    assert plan_from_mapping(json.loads(json.dumps(plan.to_dict()))) == plan


def test_from_dict_checks_what_it_reads() -> None:
    with pytest.raises(PlanError):
        plan_from_mapping({"tasks": "nope"})


def test_a_batch_without_can_parallel_may_run_its_tasks_together() -> None:
    plan = plan_from_mapping(
        shell_plan({"id": "a"}, {"id": "b"}, batches=[{"batch_id": 1, "task_ids": ["a", "b"]}])
    )

    assert plan.batches == (Batch(1, ("a", "b"), True),)


def documented_yaml(starting: str = "") -> list[str]:
    doc = (Path(__file__).parents[2] / "docs" / "plan-format.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```yaml\n(.*?)```", doc, re.DOTALL)
    return [block for block in blocks if block.startswith(starting)]


def test_the_documented_profile_example_is_a_valid_plan() -> None:
    [example] = documented_yaml("profiles:")
    plan = parse_plan(example)
    [profile] = plan.profiles
    assert plan.profile_for(plan.tasks[0]) == profile
    assert plan.agent_for(plan.tasks[0]) == "claude"
    assert profile.max_concurrency == 2
    assert dict(profile.env)["ANTHROPIC_AUTH_TOKEN"] == "${GATEWAY_TOKEN}"


def test_the_documented_example_plan_is_valid_and_batches_as_described() -> None:
    example, explicit = documented_yaml()[0], documented_yaml("batches:")[0]

    derived = plan_batches(parse_plan(example))

    assert [batch.task_ids for batch in derived] == [
        ("parser", "parser-tests"),
        ("cli",),
        ("format",),
    ]
    assert plan_batches(parse_plan(example + explicit)) == derived


# --- text-level errors ------------------------------------------------------------


def test_invalid_yaml_is_refused_with_its_line_and_column() -> None:
    with pytest.raises(PlanError) as refused:
        parse_plan("tasks:\n  - id: a\n   run: x\n  bad", source="plan.yaml")

    [problem] = refused.value.problems
    assert problem.startswith("plan.yaml: invalid YAML at line 3, column")


def test_invalid_json_is_refused_with_its_line_and_column() -> None:
    [problem] = problems('{\n  "tasks": [\n    {"id": "a" "run": "x"}\n  ]\n}')

    assert problem.startswith("<plan>: invalid JSON at line 3, column")


def test_a_duplicate_yaml_key_is_refused_instead_of_silently_dropping_tasks() -> None:
    [problem] = problems("tasks: [{id: a, run: x}]\ntasks: [{id: b, run: y}]\n")

    assert "duplicate key 'tasks'" in problem
    assert "line 2" in problem


def test_a_duplicate_json_key_is_refused() -> None:
    [problem] = problems('{"tasks": [], "tasks": [{"id": "a", "run": "x"}]}')

    assert "duplicate key 'tasks'" in problem


def test_an_empty_document_is_an_empty_plan() -> None:
    assert problems("") == ["the plan is empty"]
    assert problems("# just a comment\n") == ["the plan is empty"]


@pytest.mark.parametrize(
    ("text", "got"), [("- a\n- b\n", "list"), ("just words", "str"), ("42", "int")]
)
def test_a_top_level_that_is_not_a_mapping_is_refused(text: str, got: str) -> None:
    assert problems(text) == [f"the plan must be a mapping with a 'tasks' list, got {got}"]


def test_several_yaml_documents_are_refused() -> None:
    [problem] = problems("tasks: []\n---\ntasks: []\n")

    assert "expected a single document" in problem


def test_a_yaml_value_python_cannot_build_is_a_plan_error() -> None:
    [problem] = problems("base: 2024-13-45\ntasks: []\n")

    assert problem.startswith("<plan>: invalid YAML")


def test_deep_nesting_is_refused_not_a_recursion_error() -> None:
    assert problems("[" * 100_000) == ["<plan>: the plan is nested too deeply"]


def test_text_that_is_not_a_string_is_refused() -> None:
    with pytest.raises(PlanError, match="a plan must be text, got bytes"):
        parse_plan(b"tasks: []")  # type: ignore[arg-type]


# --- plan-level errors ------------------------------------------------------------


def test_a_plan_without_tasks_is_refused() -> None:
    assert problems("base: main\n") == ["the plan has no tasks"]
    assert problems("tasks: []\n") == ["the plan has no tasks"]


def test_tasks_that_are_not_a_list_are_refused() -> None:
    assert problems({"tasks": "a, b"}) == ["'tasks' must be a list of tasks, got str"]


def test_an_unknown_top_level_field_is_refused_with_a_suggestion() -> None:
    assert problems(shell_plan({"id": "a"}, max_concurency=2)) == [
        "unknown field 'max_concurency' in the plan (did you mean 'max_concurrency'?)"
    ]


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("max_concurrency", True, "'max_concurrency' must be an integer, got bool"),
        ("max_concurrency", 0, "'max_concurrency' must be from 1 to 64, got 0"),
        ("max_concurrency", 65, "'max_concurrency' must be from 1 to 64, got 65"),
        ("max_concurrency", "3", "'max_concurrency' must be an integer, got str"),
        ("retries", False, "'retries' must be an integer, got bool"),
        ("retries", -1, "'retries' must be from 0 to 100, got -1"),
        ("retries", 1.5, "'retries' must be an integer, got float"),
        ("timeout", 0, "'timeout' must be more than 0 and at most 2592000 seconds"),
        ("timeout", float("inf"), "'timeout' must be more than 0 and at most 2592000 seconds"),
        ("timeout", float("nan"), "'timeout' must be more than 0 and at most 2592000 seconds"),
        ("timeout", True, "'timeout' must be a number of seconds, got bool"),
        ("test_timeout", "1h", "'test_timeout' must be a number of seconds, got str"),
        ("test_command", ["pytest"], "'test_command' must be a string, got list"),
        ("test_command", "   ", "'test_command' must not be empty"),
        ("setup_command", "make\x00", "'setup_command' contains a NUL byte"),
        ("allow_red_base", "yes", "'allow_red_base' must be true or false, got str"),
        ("base", 7, "'base' must be a string, got int"),
        ("base", "-f", "'base' must be a git branch name, got '-f'"),
        ("base", "a..b", "'base' must be a git branch name, got 'a..b'"),
        ("base", "has space", "'base' must be a git branch name, got 'has space'"),
        ("copy_ignored", ".env", "'copy_ignored' must be a list of paths, got str"),
        ("copy_ignored", ["/etc/passwd"], "'copy_ignored[0]' must be a path relative to the"),
        ("copy_ignored", ["a/../../x"], "'copy_ignored[0]' must not contain '..'"),
        ("copy_ignored", ["."], "'copy_ignored[0]' must name a file or directory"),
        ("copy_ignored", [".env", 3], "'copy_ignored[1]' must be a string, got int"),
        ("agent", "claud", "unknown agent 'claud': use one of shell, claude, codex, aider"),
        ("agent", 5, "'agent' must be a list of argv strings, got int"),
        ("agent", ["myagent", "--go"], "a custom 'agent' must have '{prompt}' in one of"),
        ("agent", ["myagent", 1, "{prompt}"], "'agent[1]' must be a string, got int"),
    ],
)
def test_a_bad_plan_setting_is_refused_and_explained(
    field: str, value: object, expected: str
) -> None:
    [problem] = problems(shell_plan({"id": "a", "prompt": "p"}, **{field: value}))

    assert problem.startswith(expected)


def test_an_overlong_command_is_refused() -> None:
    [problem] = problems(shell_plan({"id": "a"}, test_command="x" * 100_001))

    assert problem == "'test_command' is too long (100001 characters; the limit is 100000)"


# --- task-level errors ------------------------------------------------------------


def test_an_unsafe_task_id_is_refused_and_named() -> None:
    assert problems(shell_plan({"id": "X Y"})) == [
        "task 'X Y': id must match ^[a-z0-9][a-z0-9_-]{0,62}$"
    ]


@pytest.mark.parametrize(
    "task_id", ["-rf", "a/b", "a.b", "..", "A", "a" * 64, "a\n", "", "é", "_a"]
)
def test_ids_that_are_unsafe_as_branch_or_directory_names_are_refused(task_id: str) -> None:
    assert problems(shell_plan({"id": task_id}))


def test_a_task_id_that_is_not_a_string_names_the_task_by_position() -> None:
    assert problems(shell_plan({"id": "a"}, {"id": 7})) == [
        "task #2: 'id' must be a string, got int"
    ]


def test_a_task_without_an_id_is_refused() -> None:
    assert problems(shell_plan({"title": "t"})) == ["task #1: missing 'id'"]


def test_a_task_that_is_not_a_mapping_is_refused() -> None:
    assert problems({"tasks": ["do it"]}) == ["task #1: must be a mapping of fields, got str"]


def test_an_overlong_id_is_refused_without_flooding_the_report() -> None:
    [problem] = problems(shell_plan({"id": "a" * 5000}))

    assert problem.startswith("task 'aaaa")
    assert "is too long (5000 characters; the limit is 1000)" in problem
    assert len(problem) < 200


def test_duplicate_task_ids_are_refused() -> None:
    assert problems(shell_plan({"id": "a"}, {"id": "a"}, {"id": "b"})) == ["duplicate task id 'a'"]


def test_an_unknown_task_field_is_refused_and_named() -> None:
    assert problems(shell_plan({"id": "a", "bogus": 1})) == ["unknown field 'bogus' in task 'a'"]


def test_a_misspelt_task_field_gets_a_suggestion() -> None:
    assert problems(shell_plan({"id": "a", "depend_on": []})) == [
        "unknown field 'depend_on' in task 'a' (did you mean 'depends_on'?)"
    ]


def test_a_dependency_on_an_unknown_task_is_refused_and_named() -> None:
    assert problems(shell_plan({"id": "a"}, {"id": "b", "depends_on": ["x"]})) == [
        "task 'b': depends on unknown task 'x'"
    ]


def test_a_self_dependency_is_refused() -> None:
    assert problems(shell_plan({"id": "a", "depends_on": ["a"]})) == ["task 'a': depends on itself"]


def test_a_repeated_dependency_is_refused() -> None:
    assert problems(shell_plan({"id": "a"}, {"id": "b", "depends_on": ["a", "a"]})) == [
        "task 'b': lists dependency 'a' 2 times"
    ]


def test_a_cycle_is_refused_and_named() -> None:
    plan = shell_plan(
        {"id": "a", "depends_on": ["b"]},
        {"id": "b", "depends_on": ["c"]},
        {"id": "c", "depends_on": ["a"]},
        {"id": "d", "depends_on": ["c"]},
    )

    assert problems(plan) == ["dependency cycle: a -> b -> c -> a"]


def test_every_separate_cycle_is_named() -> None:
    plan = shell_plan(
        {"id": "a", "depends_on": ["b"]},
        {"id": "b", "depends_on": ["a"]},
        {"id": "c", "depends_on": ["d"]},
        {"id": "d", "depends_on": ["c"]},
    )

    assert problems(plan) == ["dependency cycle: a -> b -> a", "dependency cycle: c -> d -> c"]


def test_a_cycle_is_named_from_its_earliest_task_in_the_plan() -> None:
    plan = shell_plan(
        {"id": "x", "depends_on": ["b"]},
        {"id": "a", "depends_on": ["x"]},
        {"id": "b", "depends_on": ["a"]},
    )

    assert problems(plan) == ["dependency cycle: x -> b -> a -> x"]


def test_depends_on_must_be_a_list_of_task_ids() -> None:
    assert problems(shell_plan({"id": "a", "depends_on": "b"})) == [
        "task 'a': 'depends_on' must be a list of task ids, got str"
    ]


def test_files_must_be_relative_paths_inside_the_repository() -> None:
    assert problems(shell_plan({"id": "a", "files": ["/etc/hosts", "../x", 3]})) == [
        "task 'a': 'files[0]' must be a path relative to the repository, not an absolute path",
        "task 'a': 'files[1]' must not contain '..'",
        "task 'a': 'files[2]' must be a string, got int",
    ]


def test_the_shell_runner_needs_a_run_command() -> None:
    assert problems({"tasks": [{"id": "a", "prompt": "do it"}]}) == [
        "task 'a': the shell runner needs a 'run' command"
    ]


def test_an_agent_needs_a_prompt() -> None:
    assert problems({"agent": "claude", "tasks": [{"id": "a"}]}) == [
        "task 'a': agent 'claude' needs a 'prompt'"
    ]


def test_a_task_level_agent_overrides_the_plans_for_the_runner_checks() -> None:
    plan = {"agent": "codex", "tasks": [{"id": "a", "agent": "shell", "prompt": "p"}]}

    assert problems(plan) == ["task 'a': the shell runner needs a 'run' command"]


def test_a_custom_agent_needs_a_prompt() -> None:
    plan = {"tasks": [{"id": "a", "agent": ["bot", "{prompt}"]}]}

    assert problems(plan) == ["task 'a': agent the custom agent needs a 'prompt'"]


def test_a_run_command_on_an_agent_task_is_refused_rather_than_ignored() -> None:
    plan = {"agent": "aider", "tasks": [{"id": "a", "prompt": "p", "run": "make"}]}

    assert problems(plan) == [
        "task 'a': 'run' is only for the shell runner, but this task's agent is 'aider'"
    ]


def test_a_task_with_an_invalid_agent_gets_no_runner_complaints_on_top() -> None:
    assert problems({"tasks": [{"id": "a", "agent": "gpt"}]}) == [
        "task 'a': unknown agent 'gpt': use one of shell, claude, codex, aider,"
        " or a list of argv strings with '{prompt}' in one of them"
    ]


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("title", "t" * 1001, "task 'a': 'title' is too long (1001 characters; the limit is 1000)"),
        ("prompt", "p" * 100_001, "task 'a': 'prompt' is too long (100001 characters"),
        ("prompt", "say\x00hi", "task 'a': 'prompt' contains a NUL byte"),
        ("run", "", "task 'a': 'run' must not be empty"),
        ("timeout", True, "task 'a': 'timeout' must be a number of seconds, got bool"),
        ("timeout", -5, "task 'a': 'timeout' must be more than 0"),
        ("files", "src/", "task 'a': 'files' must be a list of paths, got str"),
    ],
)
def test_a_bad_task_field_is_refused_and_names_the_task(
    field: str, value: object, expected: str
) -> None:
    [problem] = problems(shell_plan({"id": "a", "prompt": "p", field: value}))

    assert problem.startswith(expected)


def test_every_problem_is_reported_at_once() -> None:
    found = problems(
        """
retries: true
bogus: 1
tasks:
  - {id: a, depends_on: [x]}
  - {id: b, depends_on: [c], run: make}
  - {id: c, depends_on: [b], run: make}
  - {id: "Not OK", run: make}
"""
    )

    assert found == [
        "unknown field 'bogus' in the plan",
        "'retries' must be an integer, got bool",
        "task 'a': the shell runner needs a 'run' command",
        "task 'Not OK': id must match ^[a-z0-9][a-z0-9_-]{0,62}$",
        "task 'a': depends on unknown task 'x'",
        "dependency cycle: b -> c -> b",
    ]


def test_the_error_message_lists_every_problem() -> None:
    with pytest.raises(PlanError) as refused:
        plan_from_mapping({"tasks": [], "bogus": 1})

    assert str(refused.value) == (
        "invalid plan:\n  - unknown field 'bogus' in the plan\n  - the plan has no tasks"
    )


# --- explicit batches -------------------------------------------------------------


def batched(*batches: dict[str, Any]) -> dict[str, Any]:
    """Tasks a, b, c (c depends on a) with the given explicit batches."""
    return shell_plan(
        {"id": "a"}, {"id": "b"}, {"id": "c", "depends_on": ["a"]}, batches=list(batches)
    )


def test_batches_must_be_a_list() -> None:
    assert problems(shell_plan({"id": "a"}, batches={"1": ["a"]})) == [
        "'batches' must be a list of batches, got mapping"
    ]


def test_a_task_missing_from_the_batches_is_refused() -> None:
    assert problems(batched({"batch_id": 1, "task_ids": ["a", "b"]})) == [
        "task 'c': is in no batch"
    ]


def test_a_task_in_two_batches_is_refused() -> None:
    assert problems(
        batched({"batch_id": 1, "task_ids": ["a", "b"]}, {"batch_id": 2, "task_ids": ["c", "b"]})
    ) == ["task 'b': is in more than one batch (1, 2)"]


def test_an_unknown_task_in_a_batch_is_refused() -> None:
    assert problems(
        batched({"batch_id": 1, "task_ids": ["a", "b"]}, {"batch_id": 2, "task_ids": ["c", "z"]})
    ) == ["batch 2: unknown task 'z'"]


def test_duplicate_batch_ids_are_refused() -> None:
    assert problems(
        batched({"batch_id": 1, "task_ids": ["a", "b"]}, {"batch_id": 1, "task_ids": ["c"]})
    ) == ["duplicate batch id 1"]


def test_a_dependency_in_the_same_batch_is_refused() -> None:
    assert problems(batched({"batch_id": 1, "task_ids": ["a", "b", "c"]})) == [
        "task 'c': depends on task 'a', which must be in a batch before batch 1 but is in batch 1"
    ]


def test_a_dependency_in_a_later_batch_is_refused() -> None:
    assert problems(
        batched({"batch_id": 1, "task_ids": ["c", "b"]}, {"batch_id": 2, "task_ids": ["a"]})
    ) == [
        "task 'c': depends on task 'a', which must be in a batch before batch 1 but is in batch 2"
    ]


def test_earlier_means_earlier_in_the_list_whatever_the_ids() -> None:
    plan = plan_from_mapping(
        batched({"batch_id": 7, "task_ids": ["a", "b"]}, {"batch_id": 3, "task_ids": ["c"]})
    )

    assert [batch.batch_id for batch in plan.batches or ()] == [7, 3]


def test_an_empty_batch_is_refused() -> None:
    assert problems(
        batched(
            {"batch_id": 1, "task_ids": ["a", "b"]},
            {"batch_id": 2, "task_ids": []},
            {"batch_id": 3, "task_ids": ["c"]},
        )
    ) == ["batch 2: has no tasks"]


def test_a_parallel_batch_of_tasks_touching_the_same_files_is_refused() -> None:
    plan = shell_plan(
        {"id": "a", "files": ["src/"]},
        {"id": "b", "files": ["src/b.py"]},
        batches=[{"batch_id": 1, "task_ids": ["a", "b"], "can_parallel": True}],
    )

    assert problems(plan) == [
        "batch 1: tasks 'a' and 'b' both touch 'src/' / 'src/b.py', so they cannot run in parallel"
    ]


def test_a_sequential_batch_may_hold_tasks_touching_the_same_files() -> None:
    plan = shell_plan(
        {"id": "a", "files": ["src/a.py"]},
        {"id": "b", "files": ["src/a.py"]},
        batches=[{"batch_id": 1, "task_ids": ["a", "b"], "can_parallel": False}],
    )

    assert plan_from_mapping(plan).batches == (Batch(1, ("a", "b"), False),)


@pytest.mark.parametrize(
    ("batch", "expected"),
    [
        ("one", "batch #1: must be a mapping with batch_id, task_ids and can_parallel, got str"),
        ({"task_ids": ["a", "b", "c"]}, "batch #1: missing 'batch_id'"),
        (
            {"batch_id": True, "task_ids": ["a"]},
            "batch #1: 'batch_id' must be an integer, got bool",
        ),
        ({"batch_id": 0, "task_ids": ["a"]}, "batch #1: 'batch_id' must be from 1 to"),
        ({"batch_id": 1}, "batch 1: missing 'task_ids'"),
        (
            {"batch_id": 1, "task_ids": "a"},
            "batch 1: 'task_ids' must be a list of task ids, got str",
        ),
        (
            {"batch_id": 1, "task_ids": ["a"], "can_parallel": 1},
            "batch 1: 'can_parallel' must be true or false, got int",
        ),
        (
            {"batch_id": 1, "task_ids": ["a"], "parallel": True},
            "unknown field 'parallel' in batch 1",
        ),
    ],
)
def test_a_malformed_batch_is_refused_and_named(batch: object, expected: str) -> None:
    found = problems(shell_plan({"id": "a"}, batches=[batch]))

    assert any(problem.startswith(expected) for problem in found), found


def test_the_integration_environment_fields_are_read() -> None:
    plan = plan_from_mapping(
        shell_plan(
            {"id": "a"},
            test_command=".venv/bin/python -m pytest",
            setup_command="cp .env.example .env",
            test_setup_command="python -m venv .venv && .venv/bin/pip install -e .",
            keep_ignored=[".venv", "web/node_modules"],
            setup_inputs=["pyproject.toml", "web/package-lock.json"],
            junit_report="build/junit.xml",
        )
    )
    assert plan.test_setup_command == "python -m venv .venv && .venv/bin/pip install -e ."
    assert plan.keep_ignored == (".venv", "web/node_modules")
    assert plan.setup_inputs == ("pyproject.toml", "web/package-lock.json")
    assert plan.junit_report == "build/junit.xml"
    assert plan_from_mapping(plan.to_dict()) == plan


def test_a_stored_plan_from_before_the_environment_fields_reads_with_their_defaults() -> None:
    stored = {"test_command": "pytest", "copy_ignored": [], "tasks": [{"id": "a", "run": "x"}]}
    plan = plan_from_mapping(stored)
    assert (plan.test_setup_command, plan.keep_ignored, plan.setup_inputs) == (None, (), ())
    assert plan.junit_report is None


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("keep_ignored", ["__pycache__"], "'keep_ignored[0]' is a cache plait removes"),
        ("keep_ignored", [".venv/lib/x.pyc"], "'keep_ignored[0]' is a cache plait removes"),
        ("keep_ignored", [".pytest_cache"], "'keep_ignored[0]' is a cache plait removes"),
        ("keep_ignored", ["../venv"], "'keep_ignored[0]' must not contain '..'"),
        ("keep_ignored", ["."], "'keep_ignored[0]' must name a file or directory"),
        ("setup_inputs", ["/etc/passwd"], "'setup_inputs[0]' must be a path relative to the"),
        ("setup_inputs", [".git/HEAD"], "'setup_inputs[0]' must not be inside '.git'"),
        ("junit_report", "/tmp/report.xml", "'junit_report' must be a path relative to the"),
        ("test_setup_command", "make\x00", "'test_setup_command' contains a NUL byte"),
    ],
)
def test_a_bad_environment_field_is_refused_and_explained(
    field: str, value: object, expected: str
) -> None:
    [problem] = problems(shell_plan({"id": "a"}, test_command="pytest", **{field: value}))

    assert problem.startswith(expected)


@pytest.mark.parametrize("field", ["test_setup_command", "junit_report"])
def test_a_test_only_field_without_a_test_command_is_refused(field: str) -> None:
    [problem] = problems(shell_plan({"id": "a"}, **{field: "x"}))

    assert problem == f"'{field}' needs a 'test_command' to serve"


# --- profiles ----------------------------------------------------------------------


def agent_plan(**fields: Any) -> dict[str, Any]:
    return {"tasks": [{"id": "a", "prompt": "p", "profile": "fast"}], **fields}


def test_a_task_naming_an_unknown_profile_is_refused_with_the_known_ones() -> None:
    with pytest.raises(PlanError, match=r"unknown profile 'fast' \(profiles: slow\)"):
        plan_from_mapping(agent_plan(profiles={"slow": {"agent": "claude"}}))


def test_a_task_cannot_name_both_an_agent_and_a_profile() -> None:
    plan = agent_plan(profiles={"fast": {"agent": "claude"}})
    plan["tasks"][0]["agent"] = "codex"
    with pytest.raises(PlanError, match="give 'agent' or 'profile', not both"):
        plan_from_mapping(plan)


def test_a_plans_profile_replaces_the_users_profile_of_the_same_name() -> None:
    user = {"fast": {"agent": "aider", "model": "openai/x"}, "other": {"agent": "codex"}}
    plan = plan_from_mapping(agent_plan(profiles={"fast": {"agent": "claude"}}), user_profiles=user)
    assert plan.agent_for(plan.tasks[0]) == "claude"
    assert {p.name for p in plan.profiles} == {"fast", "other"}
    assert plan_from_mapping(json.loads(json.dumps(plan.to_dict()))) == plan


@pytest.mark.parametrize(
    ("profile", "problem"),
    [
        ({"model": "m"}, "missing 'agent'"),
        ({"agent": "claude", "env": {"BAD NAME": "x"}}, "invalid variable name"),
        ({"agent": "claude", "env": {"PLAIT_TOKEN": "x"}}, "PLAIT_ variables are plait's own"),
        ({"agent": "claude", "max_concurrency": 0}, "'max_concurrency' must be from 1 to 64"),
        ({"agent": "claude", "program": "claude"}, "'program' must be an absolute path"),
        ({"agent": "shell", "model": "m"}, "the shell runner has no model"),
        ({"agent": "claude", "modle": "m"}, "did you mean 'model'"),
    ],
)
def test_a_bad_profile_is_refused_naming_the_problem(profile: dict[str, Any], problem: str) -> None:
    with pytest.raises(PlanError, match=re.escape(problem)):
        plan_from_mapping(agent_plan(profiles={"fast": profile}))


def test_only_a_shell_task_may_change_nothing_unless_the_plan_says_otherwise() -> None:
    plan = plan_from_mapping(
        {
            "tasks": [
                {"id": "fmt", "run": "ruff format"},
                {"id": "fix", "agent": "claude", "prompt": "p"},
                {"id": "look", "agent": "claude", "prompt": "p", "allow_no_change": True},
            ]
        }
    )
    assert [plan.allows_no_change(t) for t in plan.tasks] == [True, False, True]
