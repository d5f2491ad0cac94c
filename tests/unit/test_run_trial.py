"""The trial copy the recorder checks events on: folding onto it never changes the real
state, and it folds exactly as a deep copy of the state does."""

from __future__ import annotations

import copy

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from plait.domain.errors import InvalidTransition
from plait.domain.events import (
    CulpritFound,
    FellBackToSequential,
    MergeConflicted,
    RunEvent,
    RunResumed,
    TaskFailed,
    TaskRequeued,
    WorkKept,
)
from plait.domain.run import RunState, replay
from plait.domain.run.trial import trial
from tests.unit.test_run_replay import (
    RUN,
    begin,
    complete_batch,
    failing_tests,
    finish,
    happy_path,
    land,
    launch,
    merge,
    passing_tests,
    remove,
    run_task,
    start_batch,
    stopped_mid_batch,
    succeed,
    wt,
)


def conflicted_then_rerun() -> list[RunEvent]:
    return [
        *begin(["a", "b"]),
        start_batch(1, "a", "b"),
        *run_task(1, "a"),
        *run_task(1, "b"),
        *merge(1, "a"),
        MergeConflicted(run_id=RUN, batch_id=1, task_id="b", worktree_id=wt("b"), files=["x"]),
        *land(1, "c0", "m-a"),
        FellBackToSequential(run_id=RUN, batch_id=1, reason="b conflicted", task_ids=["b"]),
        TaskRequeued(run_id=RUN, batch_id=1, task_id="b", reason="conflict"),
        remove("b"),
        *run_task(1, "b", attempt=2),
        *merge(1, "b", attempt=2, onto="m-a"),
        *land(1, "m-a", "m-b"),
        complete_batch(1),
        remove("a"),
        remove("b", attempt=2),
        finish("m-b"),
    ]


def culprit_retried_and_kept() -> list[RunEvent]:
    return [
        *begin(["a", "b", "c"]),
        start_batch(1, "a", "b", "c"),
        *launch(1, "a"),
        TaskFailed(
            run_id=RUN,
            batch_id=1,
            task_id="a",
            worktree_id=wt("a"),
            attempt=1,
            exit_code=2,
            error="exit 2",
            will_retry=True,
        ),
        remove("a"),
        *run_task(1, "a", attempt=2),
        *run_task(1, "b"),
        *run_task(1, "c"),
        *merge(1, "a", "b", "c", attempt=2),
        failing_tests(1, "m-c"),
        passing_tests(1, "m-a"),
        CulpritFound(run_id=RUN, batch_id=1, task_id="b", output_tail="1 failed"),
        WorkKept(run_id=RUN, task_id="b", branch="plait/b", reason="broke the tests"),
        RunResumed(run_id=RUN, reason="recovered"),
    ]


HISTORIES = [happy_path(), conflicted_then_rerun(), culprit_retried_and_kept(), stopped_mid_batch()]
EVERY_EVENT = [event for history in HISTORIES for event in history]


def folded(state: RunState, events: list[RunEvent]) -> RunState | None:
    """`events` folded onto `state` (changed in place), or None when one is refused."""
    try:
        for event in events:
            state.apply(event, "2026-01-01T00:00:00Z")
    except InvalidTransition:
        return None
    return state


@settings(max_examples=300, deadline=None)
@given(
    history=st.sampled_from(HISTORIES),
    cut=st.integers(min_value=1, max_value=60),
    following=st.lists(st.integers(min_value=0, max_value=len(EVERY_EVENT) - 1), max_size=4),
    next_ones=st.integers(min_value=0, max_value=4),
)
def test_folding_onto_a_trial_leaves_the_state_alone_and_matches_a_deep_copy(
    history: list[RunEvent], cut: int, following: list[int], next_ones: int
) -> None:
    state = replay(history[:cut])
    # What a recorder appends next: the history's own next events, then maybe any others
    # (most of them refused: another task's, another attempt's, a batch in another status).
    events = history[cut : cut + next_ones] + [EVERY_EVENT[i] for i in following]
    before = state.to_json_dict()

    on_trial = folded(trial(state), events)
    on_copy = folded(copy.deepcopy(state), events)

    assert state.to_json_dict() == before
    assert (on_trial is None) == (on_copy is None)
    if on_trial is not None and on_copy is not None:
        assert on_trial.to_json_dict() == on_copy.to_json_dict()
        assert on_trial.status_view() == on_copy.status_view()


def test_a_refused_event_on_a_trial_leaves_the_state_as_it_was() -> None:
    state = replay(happy_path()[:12])
    before = state.to_json_dict()
    checked = trial(state)
    checked.apply(remove("a"))  # applies on the trial
    with pytest.raises(InvalidTransition):
        checked.apply(succeed(1, "a"))  # refused
    assert checked.tasks["a"].worktree_removed
    assert state.to_json_dict() == before


def test_a_trial_shares_no_entry_it_changed_with_the_state() -> None:
    state = replay([*begin(["a", "b"]), start_batch(1, "a", "b")])
    checked = trial(state)
    for event in launch(1, "a"):
        checked.apply(event)
    assert checked.tasks["a"] is not state.tasks["a"]
    assert checked.tasks["a"].attempts
    assert not state.tasks["a"].attempts
    assert state.tasks["a"].status == "pending"
    assert checked.batches[1] is not state.batches[1]


def test_a_trial_of_a_large_run_copies_only_what_the_events_touch() -> None:
    task_ids = [f"t{i}" for i in range(300)]
    state = replay([*begin(task_ids), start_batch(1, *task_ids)])
    checked = trial(state)
    checked.apply(launch(1, "t7")[0])
    copied = [t for t in task_ids if dict.__getitem__(checked.tasks, t) is not state.tasks[t]]
    assert copied == ["t7"]
