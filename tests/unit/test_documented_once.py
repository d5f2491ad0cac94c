"""Facts kept in one home and shown elsewhere: the states' words in docs/states.md, and the
planner presets in the CLI's help (filled in from the preset table when help is printed)."""

from __future__ import annotations

import argparse
from pathlib import Path

from plait.cli import PLANNER_PRESETS, build_parser
from plait.domain.agents import preset_names
from plait.domain.statuses import MEANING, BatchStatus, RunStatus, TaskStatus, vocabulary_markdown

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_docs_states_is_written_from_the_status_words() -> None:
    assert (DOCS / "states.md").read_text(encoding="utf-8") == vocabulary_markdown(), (
        "regenerate it: python -m plait.domain.statuses > docs/states.md"
    )


def test_every_state_has_a_meaning() -> None:
    for kind in (TaskStatus, RunStatus, BatchStatus):
        assert set(MEANING[kind]) == set(kind)


def test_the_cli_help_names_the_planner_presets_there_are() -> None:
    (commands,) = (
        action
        for action in build_parser()._actions
        if isinstance(action, argparse._SubParsersAction)
    )
    help_text = " ".join(commands.choices["run"].format_help().split())
    assert f"an agent preset ({', '.join(preset_names())})" in help_text
    assert PLANNER_PRESETS not in help_text
