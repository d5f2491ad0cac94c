"""Agent profiles: named ways to run a preset, from the plan and the user's config file.

    profiles:
      fast:
        agent: claude
        model: claude-sonnet-4-5
        args: [--max-turns, "40"]
        env: {ANTHROPIC_BASE_URL: "https://gateway.example"}
        drop_env: [HTTPS_PROXY]
        pass_env: [MY_GATEWAY_KEY]
        max_concurrency: 2

The user's profiles (`~/.config/plait/profiles.yaml`, read by the execution layer) come
first; the plan's own profiles of the same name replace them whole.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from plait.domain.agents import SHELL, preset_names
from plait.domain.plan.fields import MAX_NAME, MAX_TEXT, FieldReader, show, type_name
from plait.domain.plan.model import Agent, Profile
from plait.domain.plan.runners import read_agent
from plait.domain.plan.schema import MAX_PROFILE_CONCURRENCY, PROFILE_NAME, PROFILE_SCHEMA

__all__ = ["PROFILE_FIELDS", "read_profiles"]

PROFILE_FIELDS = frozenset(PROFILE_SCHEMA)  # the table the OpenAPI document shows
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,254}")


def read_profiles(raw: object, user: object, problems: list[str]) -> tuple[Profile, ...]:
    """The user's profiles overlaid by the plan's."""
    merged: dict[object, tuple[str, object]] = {}
    for where, value in (("the profiles file", user), ("the plan", raw)):
        if value is None:
            continue
        if not isinstance(value, Mapping):
            problems.append(f"'profiles' in {where} must be a mapping of names to profiles")
            continue
        for name, body in value.items():
            merged[name] = (where, body)
    profiles = []
    for name, (where, body) in merged.items():
        profile = _read_profile(name, body, where, problems)
        if profile is not None:
            profiles.append(profile)
    return tuple(profiles)


def _read_profile(name: object, body: object, where: str, problems: list[str]) -> Profile | None:
    if not isinstance(name, str) or not PROFILE_NAME.fullmatch(name):
        problems.append(
            f"profile {show(name)} in {where}: the name must match ^{PROFILE_NAME.pattern}$"
        )
        return None
    owner = f"profile {name!r}"
    if not isinstance(body, Mapping):
        problems.append(f"{owner}: must be a mapping of fields, got {type_name(body)}")
        return None
    fields = FieldReader(body, owner, problems)
    fields.reject_unknown(PROFILE_FIELDS)
    if body.get("agent") is None:
        presets = ", ".join(preset_names())
        fields.problem(f"missing 'agent' (the preset it runs: {presets}, or a template)")
        return None
    agent: Agent | None = read_agent(fields)
    if agent is None:
        return None
    env = _read_env(fields)
    profile = Profile(
        name=name,
        agent=agent,
        model=fields.text("model"),
        args=fields.text_list("args", what="arguments", max_len=MAX_TEXT) or (),
        env=env,
        drop_env=fields.text_list("drop_env", what="variable names", check=_env_name_problem) or (),
        pass_env=fields.text_list("pass_env", what="variable names", check=_pass_problem) or (),
        max_concurrency=fields.integer("max_concurrency", low=1, high=MAX_PROFILE_CONCURRENCY),
        program=fields.text("program", max_len=MAX_NAME),
    )
    if profile.model is not None and agent == SHELL:
        fields.problem("'model' needs an agent preset; the shell runner has no model")
    if profile.program is not None and not profile.program.startswith("/"):
        fields.problem(f"'program' must be an absolute path, got {show(profile.program)}")
    return profile


def _read_env(fields: FieldReader) -> tuple[tuple[str, str], ...]:
    value = fields.get("env")
    if value is None:
        return ()
    if not isinstance(value, Mapping):
        fields.problem(f"'env' must be a mapping of names to strings, got {type_name(value)}")
        return ()
    pairs: list[tuple[str, str]] = []
    for key, item in value.items():
        if not isinstance(key, str) or _env_name_problem(key):
            fields.problem(f"'env' has an invalid variable name {show(key)}")
            continue
        if key.startswith("PLAIT_"):
            fields.problem(f"'env' cannot set {key}: PLAIT_ variables are plait's own")
            continue
        text = fields.check_text(f"'env.{key}'", item, MAX_TEXT) if item != "" else ""
        if text is not None:
            pairs.append((key, text))
    return tuple(pairs)


def _env_name_problem(name: str) -> str | None:
    return None if ENV_NAME.fullmatch(name) else "must be an environment variable name"


def _pass_problem(name: str) -> str | None:
    stem = name[:-1] if name.endswith("_") else name
    return _env_name_problem(stem)
