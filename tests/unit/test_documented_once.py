"""Facts kept in one home and shown elsewhere: the states' words in docs/states.md, and the
planner presets in the CLI's help (kept there as text so `plait --help` imports nothing)."""

from __future__ import annotations

from pathlib import Path

from plait.cli import PLANNER_PRESETS
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
    assert ", ".join(preset_names()) == PLANNER_PRESETS
