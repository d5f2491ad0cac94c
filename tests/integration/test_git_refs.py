"""Ref-name validation agrees with `git check-ref-format` and refuses option-like names."""

from __future__ import annotations

import subprocess

import pytest

from plait.execution.git.cli import InvalidRefName, validate_ref_component, validate_ref_name

REFUSED = [
    "../x",
    "--upload-pack=x",
    "-b",
    "a..b",
    "x.lock",
    ".hidden",
    "a\0b",
    "a b",
    "a~1",
    "a^",
    "a:b",
    "a?",
    "a*",
    "a[b",
    "a\\b",
    "a@{1}",
    "@",
    "ends.",
    "x" * 201,
    "",
]


@pytest.mark.parametrize("name", REFUSED)
def test_a_component_git_or_we_would_refuse_is_rejected(name: str) -> None:
    with pytest.raises(InvalidRefName):
        validate_ref_component(name)


@pytest.mark.parametrize("name", ["refs/heads/main", "plait/run/task", "a/b"])
def test_a_slash_is_refused_where_a_single_component_is_expected(name: str) -> None:
    with pytest.raises(InvalidRefName, match="single component"):
        validate_ref_component(name)


@pytest.mark.parametrize(
    "name", ["plait/r1/t1", "refs/heads/main", "feature/x-1", "v1.2", "caf\u00e9"]
)
def test_ordinary_branch_names_pass(name: str) -> None:
    assert validate_ref_name(name) == name


@pytest.mark.parametrize(
    "name",
    ["plait/../x", "plait//x", "/plait", "plait/", "plait/-x", "plait/x.lock/y", "a/.b"],
)
def test_a_bad_component_anywhere_in_a_ref_is_rejected(name: str) -> None:
    with pytest.raises(InvalidRefName):
        validate_ref_name(name)


@pytest.mark.parametrize("name", [n for n in REFUSED if "\0" not in n and n])
def test_git_itself_refuses_what_we_refuse_except_our_own_extra_rules(name: str) -> None:
    ours_only = name.startswith("-") or len(name) > 200
    # check-ref-format would parse a leading '-' as its own option: ask about the full ref.
    full = f"refs/heads/{name}" if name.startswith("-") else name
    done = subprocess.run(
        ["git", "check-ref-format", "--allow-onelevel", full], capture_output=True, check=False
    )
    assert (done.returncode == 0) == ours_only
