"""The user's own plait configuration: agent profiles shared by every plan.

`~/.config/plait/profiles.yaml` on Linux (platformdirs' user config directory), or the
file `$PLAIT_PROFILES` names:

    profiles:
      sonnet:
        agent: claude
        model: claude-sonnet-4-5
        max_concurrency: 2

A plan's own `profiles` replace the user's of the same name (docs/plan-format.md).
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

from plait.domain.errors import PlanError
from plait.domain.plan.parsing import load_plan_text

__all__ = ["profiles_path", "user_profiles"]


def profiles_path() -> Path:
    named = os.environ.get("PLAIT_PROFILES")
    if named:
        return Path(named)
    return Path(platformdirs.user_config_dir("plait", appauthor=False)) / "profiles.yaml"


def user_profiles() -> object:
    """The file's `profiles` mapping (None when there is no file); PlanError naming the file
    when it cannot be read or is not YAML."""
    path = profiles_path()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise PlanError([f"cannot read the profiles file {str(path)!r}: {exc}"]) from None
    data = load_plan_text(text, source=str(path))
    if data is None:
        return None
    if not isinstance(data, dict) or set(data) - {"profiles"}:
        raise PlanError([f"{path}: the profiles file holds one mapping, `profiles:`"])
    return data.get("profiles")
