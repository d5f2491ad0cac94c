"""The checked way into a plan: text (YAML or JSON) or a decoded object -> Plan.

Every entry point either returns a valid Plan or raises PlanError listing every
problem found; no parser or type error escapes.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Hashable
from typing import TYPE_CHECKING, Any

from plait.domain.errors import PlanError
from plait.domain.plan.fields import show, type_name
from plait.domain.plan.model import BUILTIN_AGENTS, Agent, Batch, Plan, Task
from plait.domain.plan.reading import read_plan
from plait.domain.plan.schema import TASK_ID_PATTERN

if TYPE_CHECKING:
    import yaml

__all__ = [
    "BUILTIN_AGENTS",
    "TASK_ID_PATTERN",
    "Agent",
    "Batch",
    "Plan",
    "PlanError",
    "Task",
    "parse_plan",
    "plan_from_mapping",
]

MAX_PLAN_CHARS = 10_000_000
_MAX_DETAIL = 300  # characters of a parser's own message worth quoting


def parse_plan(text: str, *, source: str = "<plan>", user_profiles: object = None) -> Plan:
    """Parse a YAML or JSON plan; `source` (e.g. a file name) prefixes syntax errors.
    `user_profiles`: the profiles of the user's config file, under the plan's own."""
    return plan_from_mapping(load_plan_text(text, source=source), user_profiles=user_profiles)


def plan_from_mapping(obj: object, *, user_profiles: object = None) -> Plan:
    """Check an already-decoded plan, e.g. an HTTP JSON body or a stored `Plan.to_dict()`."""
    return read_plan(obj, user_profiles)


def load_plan_text(text: str, *, source: str = "<plan>") -> object:
    """Decode plan text into plain data, refusing duplicate keys; raises PlanError."""
    if not isinstance(text, str):
        raise PlanError([f"{source}: a plan must be text, got {type_name(text)}"])
    if len(text) > MAX_PLAN_CHARS:
        raise PlanError(
            [f"{source}: the plan is {len(text)} characters; the limit is {MAX_PLAN_CHARS}"]
        )
    if not text.lstrip().startswith(("{", "[")):
        return _load_yaml(text, source)
    try:
        return json.loads(text, object_pairs_hook=_json_object)
    except (ValueError, RecursionError) as json_error:
        # A YAML flow mapping (`{tasks: [...]}`) also starts with a brace; only if it is
        # not YAML either is the JSON error the helpful one to show.
        try:
            return _load_yaml(text, source)
        except PlanError:
            raise PlanError([_json_problem(json_error, source)]) from None


def _json_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {show(key)}")  # json keeps the last one silently
        result[key] = value
    return result


def _json_problem(error: ValueError | RecursionError, source: str) -> str:
    if isinstance(error, json.JSONDecodeError):
        return f"{source}: invalid JSON at line {error.lineno}, column {error.colno}: {error.msg}"
    if isinstance(error, RecursionError):
        return f"{source}: the plan is nested too deeply"
    return f"{source}: invalid JSON: {str(error)[:_MAX_DETAIL]}"


@functools.cache
def _strict_loader() -> type[yaml.SafeLoader]:
    """SafeLoader that refuses duplicate keys: YAML keeps the last one, silently losing tasks.

    Built on first use: PyYAML (19 modules, 10-20 ms of CPU, bench/RESULTS.md) is imported
    only for YAML text, not by every start-up of a command given a JSON plan."""
    import yaml

    class StrictLoader(yaml.SafeLoader):
        def construct_mapping(
            self, node: yaml.MappingNode, deep: bool = False
        ) -> dict[Hashable, Any]:
            seen: set[object] = set()
            for key_node, _ in node.value:
                if (
                    isinstance(key_node, yaml.ScalarNode)
                    and key_node.tag != "tag:yaml.org,2002:merge"
                ):
                    key = self.construct_object(key_node)
                    if key in seen:
                        raise yaml.constructor.ConstructorError(
                            None, None, f"duplicate key {show(key)}", key_node.start_mark
                        )
                    seen.add(key)
            return super().construct_mapping(node, deep)

    return StrictLoader


def _load_yaml(text: str, source: str) -> object:
    loader = _strict_loader()
    import yaml  # imported by _strict_loader() already

    try:
        return yaml.load(text, Loader=loader)  # a SafeLoader subclass: no arbitrary objects
    except yaml.MarkedYAMLError as error:
        raise PlanError([_yaml_problem(error, source)]) from None
    except RecursionError:
        raise PlanError([f"{source}: the plan is nested too deeply"]) from None
    except Exception as error:
        # PyYAML lets some constructor failures out raw (e.g. ValueError for the
        # date 2024-13-45, or an int past Python's digit limit): still a bad plan.
        raise PlanError([f"{source}: invalid YAML: {str(error)[:_MAX_DETAIL]}"]) from None


def _yaml_problem(error: yaml.MarkedYAMLError, source: str) -> str:
    mark = error.problem_mark or error.context_mark
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    detail = "; ".join(part for part in (error.context, error.problem) if part)
    return f"{source}: invalid YAML{where}: {detail[:_MAX_DETAIL]}"
