"""Properties of batching over random plans, and fuzzing of the plan reader.

The reader takes input from files and HTTP bodies, so for any input it must
either return a Plan or raise PlanError: never a KeyError, TypeError or a
parser's own exception.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import PurePosixPath
from typing import Any

from hypothesis import Phase, find, given, settings
from hypothesis import strategies as st

from plait.domain.errors import PlanError
from plait.domain.plan.batching import plan_batches, select_mode
from plait.domain.plan.model import Batch, Plan, Task
from plait.domain.plan.parsing import parse_plan, plan_from_mapping
from plait.domain.plan.reading import PLAN_FIELDS, TASK_FIELDS

PATHS = ("src", "src/a.py", "src/b.py", "src/pkg/", "./docs", "docs/x.md", "README.md", ".")


@st.composite
def dags(draw: st.DrawFn, max_size: int = 20) -> Plan:
    """A random acyclic plan, listed in a random order so dependencies may point forward."""
    size = draw(st.integers(1, max_size))
    ids = [f"t{n}" for n in range(size)]
    tasks = [
        Task(
            id=ids[n],
            run="true",
            depends_on=tuple(draw(st.lists(st.sampled_from(ids[:n]), unique=True, max_size=4)))
            if n
            else (),
            files=tuple(draw(st.lists(st.sampled_from(PATHS), unique=True, max_size=2))),
        )
        for n in range(size)
    ]
    return Plan(tasks=tuple(draw(st.permutations(tasks))))


def touch_same_file(left: Task, right: Task) -> bool:
    """An independent statement of the rule: equal paths, or one inside the other."""
    for a in left.files:
        for b in right.files:
            pa, pb = PurePosixPath(a), PurePosixPath(b)
            if pa == pb or pa in pb.parents or pb in pa.parents:
                return True
    return False


def assert_batched_correctly(plan: Plan, batches: tuple[Batch, ...]) -> None:
    position = {task_id: n for n, b in enumerate(batches) for task_id in b.task_ids}
    assert sorted(task_id for b in batches for task_id in b.task_ids) == sorted(plan.task_ids)
    for task in plan.tasks:
        assert all(position[dep] < position[task.id] for dep in task.depends_on)
    for batch in batches:
        members = [plan.task(task_id) for task_id in batch.task_ids]
        for n, task in enumerate(members):
            assert not any(touch_same_file(task, other) for other in members[n + 1 :])


@settings(max_examples=200, deadline=None)
@given(dags())
def test_random_dags_batch_every_task_once_after_its_dependencies_and_apart_from_its_files(
    plan: Plan,
) -> None:
    batches = plan_batches(plan)

    assert_batched_correctly(plan, batches)
    assert [b.batch_id for b in batches] == list(range(1, len(batches) + 1))
    for batch in batches:
        assert batch.can_parallel == (len(batch.task_ids) > 1)
        assert list(batch.task_ids) == sorted(batch.task_ids, key=plan.task_ids.index)
    assert (select_mode(batches).mode == "parallel") == any(b.can_parallel for b in batches)


@settings(max_examples=100, deadline=None)
@given(dags())
def test_random_plans_and_their_batches_survive_stored_json_and_the_explicit_checks(
    plan: Plan,
) -> None:
    batches = plan_batches(plan)
    stored = json.dumps({**plan.to_dict(), "batches": [b.to_dict() for b in batches]})

    reread = parse_plan(stored)

    assert reread.batches == batches
    assert plan_from_mapping(json.loads(json.dumps(plan.to_dict()))) == plan


# --- fuzzing ------------------------------------------------------------------------

JSON_SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
TASK_KEYS = (*sorted(TASK_FIELDS), "bogus")
# Every field the reader knows except `tasks` (always present), plus one it must refuse.
PLAN_KEYS = (*sorted(PLAN_FIELDS - {"tasks"}), "bogus")
# Values that are nearly right, so fuzzing reaches the checks behind the type checks.
PLAUSIBLE = (
    st.sampled_from(["a", "b", "c", "shell", "claude", "src/", "../x", "/abs", "{prompt}", ""])
    | st.lists(st.sampled_from(["a", "b", "c", "{prompt}", "src/a.py", "src"]), max_size=4)
    | st.integers(-2, 70)
    | JSON_VALUES
)


BATCH_KEYS = ("batch_id", "task_ids", "can_parallel", "bogus")


@st.composite
def mutated_plans(draw: st.DrawFn) -> dict[str, Any]:
    """A valid plan's stored form with up to three fields removed or replaced."""
    plan = draw(dags(max_size=6))
    data: dict[str, Any] = plan.to_dict()
    if draw(st.booleans()):
        data["batches"] = [batch.to_dict() for batch in plan_batches(plan)]
    # Chosen up front: a mutation may replace the very lists these come from.
    holders: list[tuple[dict[str, Any], tuple[str, ...]]] = [(data, (*PLAN_KEYS, "tasks"))]
    holders += [(task, TASK_KEYS) for task in data["tasks"]]
    holders += [(batch, BATCH_KEYS) for batch in data["batches"] or ()]
    for _ in range(draw(st.integers(0, 3))):
        holder, keys = draw(st.sampled_from(holders))
        key = draw(st.sampled_from(keys))
        if draw(st.booleans()):
            holder.pop(key, None)
        else:
            holder[key] = draw(PLAUSIBLE)
    return data


def accepted_or_refused(read: Callable[[], Plan]) -> None:
    """The reader's contract: a Plan that batches cleanly, or a PlanError with reasons."""
    try:
        plan = read()
    except PlanError as refused:
        problems = refused.problems
    else:
        select_mode(plan_batches(plan))
        assert plan_from_mapping(json.loads(json.dumps(plan.to_dict()))) == plan
        return
    assert problems
    assert all(isinstance(problem, str) and problem for problem in problems)


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_arbitrary_text_is_parsed_or_refused_with_a_plan_error(text: str) -> None:
    accepted_or_refused(lambda: parse_plan(text))


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="{}[]:,-'\"\n #&*!|>?@`%abc01.\\\t"))
def test_text_made_of_yaml_syntax_is_parsed_or_refused_with_a_plan_error(text: str) -> None:
    accepted_or_refused(lambda: parse_plan(text))


@settings(max_examples=200, deadline=None)
@given(JSON_VALUES)
def test_arbitrary_json_like_objects_are_read_or_refused_with_a_plan_error(obj: object) -> None:
    accepted_or_refused(lambda: plan_from_mapping(obj))


@settings(max_examples=300, deadline=None)
@given(mutated_plans())
def test_nearly_valid_plans_are_read_or_refused_with_a_plan_error(obj: dict[str, Any]) -> None:
    accepted_or_refused(lambda: plan_from_mapping(obj))
    accepted_or_refused(lambda: parse_plan(json.dumps(obj)))


def is_accepted(obj: dict[str, Any]) -> bool:
    try:
        plan_from_mapping(obj)
    except PlanError:
        return False
    return True


def test_the_mutated_plans_fuzzer_reaches_both_accepted_and_refused_plans() -> None:
    """A fuzzer whose plans are all refused would never exercise batching of parsed plans."""
    budget = settings(max_examples=100, database=None, phases=[Phase.generate])  # no shrinking

    assert is_accepted(find(mutated_plans(), is_accepted, settings=budget))
    assert not is_accepted(find(mutated_plans(), lambda obj: not is_accepted(obj), settings=budget))
