"""One event registry: every run-stream event type has exactly one fold, registered by type."""

from __future__ import annotations

import pytest

from plait.domain.events import RUN_EVENTS, RunCreated, RunEvent
from plait.domain.run import RunState
from plait.domain.run.registry import fold_for, folds, registered


def test_every_run_stream_event_type_has_a_fold() -> None:
    assert sorted(k.TYPE for k in registered()) == sorted(k.TYPE for k in RUN_EVENTS)


def test_a_second_fold_for_one_event_type_is_refused() -> None:
    kind = RUN_EVENTS[0]
    with pytest.raises(RuntimeError, match=f"{kind.TYPE} has a fold already"):
        folds(kind)(lambda state, event, at: None)
    assert fold_for(kind).__name__ != "<lambda>"


def test_an_event_type_without_a_fold_is_refused_by_name() -> None:
    class Unfolded(RunEvent):
        pass

    state = RunState().apply(
        RunCreated(run_id="r", project_id="p", plan={}, batches=[], base_branch="main",
                   base_commit="c0", repo_path="/repo")
    )  # fmt: skip
    with pytest.raises(TypeError, match="no fold for run-stream event Unfolded"):
        state.apply(Unfolded(run_id="r"))
