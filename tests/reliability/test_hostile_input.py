"""Hostile and malformed input through the application service and the plan reader.

Every one is refused with a clean ServiceError or PlanError that says what is wrong, and
none creates a ref or a file outside plait's own (its database, its logs, its worktrees).
The plan reader's property-based fuzzing is in tests/unit/test_batching_properties.py; the
HTTP API's in test_http_fuzz.py.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from plait.domain.errors import PlanError
from plait.domain.plan.parsing import parse_plan, plan_from_mapping
from plait.eventstore import SqlEventStore
from plait.execution.service import (
    InvalidId,
    NoBaseBranch,
    NotARepository,
    Plait,
    ServiceError,
    UnknownProject,
)
from plait.execution.settings import Settings
from tests.gitrepo import git, make_repo
from tests.reliability.fault_helpers import files_on, refs, tree_listing

# Names built to escape into paths, options or refs, or to pass for something they are not.
NASTY = [
    "",
    " ",
    ".",
    "..",
    "../x",
    "../../etc/passwd",
    "/etc/passwd",
    "a/b",
    "a\\b",
    "-x",
    "--upload-pack=x",
    "--exec=touch pwned",
    "refs/heads/main",
    "HEAD",
    "@{-1}",
    "a..b",
    "x.lock",
    "x.",
    ".x",
    "a b",
    "a\tb",
    "a\nb",
    "a\x00b",
    "a:b",
    "a~1",
    "a^",
    "a?",
    "a*",
    "a[",
    "$(touch pwned)",
    "`touch pwned`",
    "\u0440\u0430rser",  # Cyrillic er and a: looks like "parser"
    "parser\u200b",  # a zero-width space
    "ﬁle",  # the fi ligature
    "\uff21",  # a fullwidth A
    "a" * 64,
    "a" * 10_000,
    "_integration",
    "\ud800",  # a lone surrogate: not even encodable as UTF-8
]


@dataclass
class World:
    root: Path
    repo: Path
    store: SqlEventStore
    service: Plait

    def snapshot(self) -> tuple[dict[str, str], set[str]]:
        """The repository's refs and every file under the test's directory."""
        return refs(self.repo), tree_listing(self.root)


@pytest.fixture
async def world(tmp_path: Path, store_url: str) -> AsyncIterator[World]:
    repo = make_repo(tmp_path / "repo")
    store = SqlEventStore(store_url)
    service = Plait(
        store, Settings(log_root=tmp_path / "logs", worktree_root=tmp_path / "worktrees")
    )
    await service.start()
    try:
        yield World(tmp_path, repo, store, service)
    finally:
        await service.close()
        store.close()


def _problems(exc: PlanError) -> str:
    return "\n".join(exc.problems)


# -- project paths -------------------------------------------------------------------------


async def test_project_paths_that_are_not_repositories_are_refused(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = world.root
    (root / "plain-dir").mkdir()
    (root / "a-file").write_text("")
    os.symlink(root / "loop-b", root / "loop-a")
    os.symlink(root / "loop-a", root / "loop-b")
    os.symlink(root / "nowhere", root / "dangling")
    os.mkfifo(root / "a-fifo")
    git(root, "init", "--quiet", "--bare", "bare.git")
    monkeypatch.chdir(root / "plain-dir")  # relative paths resolve in a non-repository
    before = world.snapshot()
    for path in [
        *NASTY,
        str(root / "plain-dir"),
        str(root / "a-file"),
        str(root / "loop-a"),
        str(root / "loop-a" / "x"),
        str(root / "dangling"),
        str(root / "a-fifo"),
        str(root / "bare.git"),
        str(root / "repo" / "README.md"),
        "/proc/self/fd/0",
        "~nosuchuser/x",
    ]:
        with pytest.raises(NotARepository) as refused:
            await world.service.register_project(path)
        message = str(refused.value)
        assert message
        assert "\n" not in message, message
    assert world.service.read.projects() == []
    assert world.snapshot() == before


async def test_a_repository_whose_directory_name_looks_like_an_option_is_only_a_path(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """git is always run with the repository as its working directory, never as an
    argument: a directory named like an option stays a directory name."""
    odd = make_repo(world.root / "--upload-pack=touch pwned")
    monkeypatch.chdir(world.root)
    project_id = await world.service.register_project("--upload-pack=touch pwned")
    plan = plan_from_mapping({"tasks": [{"id": "a", "run": "echo a > a.txt"}], "retries": 0})
    await world.service.submit_plan(project_id, plan)
    run_id = await world.service.start_run(project_id)
    result = await world.service.wait_run(run_id)
    assert result.status == "landed", result.error
    assert "a.txt" in files_on(odd, "main")
    assert not any(p.name == "pwned" for p in world.root.rglob("pwned"))


async def test_a_symlink_to_a_repository_registers_the_repository_itself(world: World) -> None:
    os.symlink(world.repo, world.root / "link")
    project_id = await world.service.register_project(str(world.root / "link"))
    facts = await world.service.project(project_id)
    assert facts.repo_path == str(world.repo.resolve())


async def test_project_names_are_data_never_paths(world: World) -> None:
    before = world.snapshot()
    for name in NASTY:
        if "\x00" in name or "\ud800" in name:  # not storable text: refused, not a 500
            with pytest.raises(ServiceError, match="not storable text"):
                await world.service.register_project(str(world.repo), name=name)
            continue
        project_id = await world.service.register_project(str(world.repo), name=name or None)
        facts = await world.service.project(project_id)
        assert facts.repo_path == str(world.repo)
    assert world.snapshot()[0] == before[0]  # no ref
    assert tree_listing(world.root) == before[1]


# -- ids -----------------------------------------------------------------------------------


async def test_nasty_project_and_run_ids_are_refused_before_reaching_the_store_or_git(
    world: World,
) -> None:
    project_id = await world.service.register_project(str(world.repo))
    before = world.snapshot()
    for bad in NASTY:
        if bad in ("a" * 64,):
            continue  # well-formed; unknown below
        calls: list[tuple[Callable[..., Awaitable[object]], tuple[str, ...]]] = [
            (world.service.project, (bad,)),
            (world.service.start_run, (bad,)),
            (world.service.stop_run, (bad,)),
            (world.service.resume_run, (bad,)),
            (world.service.resume_run, (project_id, bad)),
        ]
        for call, args in calls:
            with pytest.raises(ServiceError) as refused:
                await call(*args)
            if bad:  # an empty run id means "the last run", of which there is none
                assert isinstance(refused.value, InvalidId), refused.value
                assert "invalid" in str(refused.value)
    with pytest.raises(UnknownProject):
        await world.service.project("a" * 63)
    assert world.snapshot() == before


# -- plans ---------------------------------------------------------------------------------


def _plan_with_task_id(task_id: str) -> dict[str, Any]:
    return {"tasks": [{"id": task_id, "run": "true"}]}


@pytest.mark.parametrize("task_id", NASTY)
def test_nasty_task_ids_are_refused_naming_the_rule(task_id: str) -> None:
    with pytest.raises(PlanError) as refused:
        plan_from_mapping(_plan_with_task_id(task_id))
    [problem] = refused.value.problems
    reasons = (
        "must match ^[a-z0-9][a-z0-9_-]{0,62}$",
        "NUL",
        "too long",
        "lone surrogate",
        "empty",
    )
    assert any(reason in problem for reason in reasons), problem
    assert "\n" not in problem  # the id is quoted, never printed raw


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("depends_on", ["../x"], "unknown task"),
        ("depends_on", ["a\x00"], "NUL"),
        ("files", ["../x"], "'..'"),
        ("files", ["/etc/passwd"], "absolute"),
        ("files", ["a\x00b"], "NUL"),
        ("files", ["x" * 10_000], "too long"),
        ("run", "a\x00b", "NUL"),
        ("run", "", "must not be empty"),
        ("run", "x" * 100_001, "too long"),
        ("title", "x" * 10_000, "too long"),
        ("prompt", "\x00", "NUL"),
        ("prompt", "\ud800", "lone surrogate"),
        ("title", "a\udfff", "lone surrogate"),
        ("timeout", -1, "more than 0"),
        ("timeout", float("nan"), "timeout"),
        ("timeout", float("inf"), "timeout"),
        ("timeout", "60", "timeout"),
        ("agent", "../../bin/sh", "unknown agent"),
        ("agent", ["sh", "-c", "x"], "{prompt}"),
        ("unknown_field", 1, "unknown field 'unknown_field'"),
        ("__proto__", {}, "unknown field"),
    ],
)
def test_hostile_task_fields_are_refused(field: str, value: object, expected: str) -> None:
    task: dict[str, Any] = {"id": "a", "run": "true", field: value}
    if field == "depends_on":
        task["run"] = "true"
    with pytest.raises(PlanError) as refused:
        plan_from_mapping({"tasks": [{"id": "x", "run": "true"}, task]})
    assert expected in _problems(refused.value)


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("base", "--upload-pack=x", "'base' must be a git branch name"),
        ("base", "a..b", "'base' must be a git branch name"),
        ("base", "x.lock", "'base' must be a git branch name"),
        ("base", "main\x00", "base"),
        ("base", "-f", "'base' must be a git branch name"),
        ("base", "@{-1}", "'base' must be a git branch name"),
        ("copy_ignored", ["../.ssh/id_rsa"], "'..'"),
        ("copy_ignored", ["/etc/passwd"], "absolute"),
        ("copy_ignored", [".git/config"], "must not be inside '.git'"),
        ("copy_ignored", ["x/.git"], "must not be inside '.git'"),
        ("max_concurrency", 10**12, "from 1 to 64"),
        ("max_concurrency", True, "got bool"),
        ("retries", -1, "retries"),
        ("test_command", "a\x00b", "NUL"),
        ("tasks", {"id": "a"}, "tasks"),
        ("tasks", [], "no tasks"),
        ("tasks", ["a"], "task"),
        ("bogus", 1, "unknown field 'bogus' in the plan"),
    ],
)
def test_hostile_plan_fields_are_refused(field: str, value: object, expected: str) -> None:
    plan: dict[str, Any] = {"tasks": [{"id": "a", "run": "true"}], field: value}
    with pytest.raises(PlanError) as refused:
        plan_from_mapping(plan)
    assert expected in _problems(refused.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "the plan is empty"),
        ("tasks: [", "invalid YAML"),
        ("tasks:\n\t- id: a", "invalid YAML"),
        ('{"tasks": [}', "invalid JSON"),
        ("tasks: []\ntasks: []", "duplicate key 'tasks'"),
        ("tasks: []\n---\ntasks: []", "single document"),
        ("!!python/object/apply:os.system ['touch pwned']", "invalid YAML"),
        ("tasks: !!python/name:os.system", "invalid YAML"),
        ("- a\n- b", "must be a mapping"),
        ("42", "must be a mapping"),
        ("\x00", "invalid YAML"),
        ("[" * 100_000, "nested too deeply"),
        ("a: " + "[" * 100_000, "nested too deeply"),
        ("x" * 10_000_001, "the limit is 10000000"),
    ],
)
def test_invalid_plan_text_is_refused_with_a_clean_error(text: str, expected: str) -> None:
    with pytest.raises(PlanError) as refused:
        parse_plan(text, source="plan.yaml")
    assert expected in _problems(refused.value)
    assert not Path("pwned").exists()


def test_a_yaml_alias_bomb_is_refused_quickly_without_expanding() -> None:
    bomb = ["a: &a ['x','x','x','x','x','x','x','x','x','x']"]
    for level in range(1, 10):
        previous = "a" if level == 1 else f"a{level - 1}"
        bomb.append(f"a{level}: &a{level} [{', '.join([f'*{previous}'] * 10)}]")
    bomb.append("tasks: [{id: t, run: 'true', files: *a9}]")
    with pytest.raises(PlanError) as refused:
        parse_plan("\n".join(bomb))
    assert refused.value.problems


async def test_a_hostile_plan_leaves_no_trace_in_the_store_or_the_repository(
    world: World,
) -> None:
    await world.service.register_project(str(world.repo))
    version = world.store.last_position()
    before = world.snapshot()
    hostile = {
        "tasks": [
            {"id": "../x", "run": "touch ../../pwned"},
            {"id": "refs/heads/main", "run": "true"},
            {"id": "ok", "run": "true", "files": ["../../x"], "depends_on": ["a..b"]},
        ],
        "base": "--upload-pack=touch pwned",
        "copy_ignored": ["/etc/passwd"],
    }
    with pytest.raises(PlanError) as from_mapping:
        plan_from_mapping(hostile)
    with pytest.raises(PlanError) as from_text:
        parse_plan(json.dumps(hostile))
    assert len(from_mapping.value.problems) >= 5
    assert from_text.value.problems == from_mapping.value.problems
    assert world.store.last_position() == version
    assert world.snapshot() == before


async def test_a_plan_whose_base_branch_does_not_exist_is_refused_at_start(world: World) -> None:
    project_id = await world.service.register_project(str(world.repo))
    before = world.snapshot()
    # The first: "main" with a Cyrillic a.
    for base in ["m\u0430in", "refs/heads/main", "main/x", "nosuch"]:
        plan = plan_from_mapping({"base": base, "tasks": [{"id": "a", "run": "true"}]})
        await world.service.submit_plan(project_id, plan)
        with pytest.raises(NoBaseBranch) as refused:
            await world.service.start_run(project_id)
        assert repr(base) in str(refused.value)
    assert world.snapshot() == before
    assert isinstance(refused.value, ServiceError)
