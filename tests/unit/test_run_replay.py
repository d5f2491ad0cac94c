"""The run fold: realistic histories replay to the right state; corrupted ones are refused."""

from __future__ import annotations

import json
from collections.abc import Sequence

import pytest

from plait.domain.errors import InvalidTransition
from plait.domain.events import (
    BaselineTested,
    BatchCompleted,
    BatchFailed,
    BatchLanded,
    BatchStarted,
    BranchMerged,
    CulpritFound,
    DomainEvent,
    ExecutionModeSelected,
    FellBackToSequential,
    MergeConflicted,
    MergeStarted,
    ProjectRegistered,
    RunCompleted,
    RunCreated,
    RunEvent,
    RunFailed,
    RunResumed,
    RunStopped,
    StopRequested,
    TaskFailed,
    TaskInterrupted,
    TaskOutput,
    TaskRequeued,
    TaskStarted,
    TaskSucceeded,
    TestsFailed,
    TestsFlaky,
    TestsPassed,
    WorkKept,
    WorktreeCreated,
    WorktreeRemoved,
    from_stored,
    to_data,
)
from plait.domain.run import RunState, apply, initial_state, replay

RUN = "run-1"
TEST = "pytest -q"

# --- history builders: realistic events with the boilerplate filled in ------------------


def wt(task_id: str, attempt: int = 1) -> str:
    return f"wt-{task_id}-{attempt}"


def created(*batches: Sequence[str]) -> RunCreated:
    return RunCreated(
        run_id=RUN,
        project_id="proj",
        plan={"tasks": [{"id": t} for b in batches for t in b]},
        batches=[
            {"batch_id": i, "task_ids": list(b), "can_parallel": len(b) > 1}
            for i, b in enumerate(batches, start=1)
        ],
        base_branch="main",
        base_commit="c0",
        repo_path="/repo",
    )


def begin(*batches: Sequence[str]) -> list[RunEvent]:
    return [
        created(*batches),
        ExecutionModeSelected(run_id=RUN, mode="parallel", reason="batch 1 has 2 tasks"),
        BaselineTested(run_id=RUN, command=TEST, passed=True, exit_code=0),
    ]


def start_batch(batch_id: int, *task_ids: str) -> BatchStarted:
    return BatchStarted(
        run_id=RUN, batch_id=batch_id, task_ids=task_ids, can_parallel=len(task_ids) > 1
    )


def output(
    task_id: str, text: str, worktree_id: str | None = None, attempt: int = 1, batch_id: int = 1
) -> TaskOutput:
    return TaskOutput(
        run_id=RUN,
        batch_id=batch_id,
        task_id=task_id,
        worktree_id=worktree_id or wt(task_id, attempt),
        attempt=attempt,
        stream="stdout",
        text=text,
    )


def launch(batch_id: int, task_id: str, attempt: int = 1) -> list[RunEvent]:
    worktree_id = wt(task_id, attempt)
    return [
        WorktreeCreated(
            run_id=RUN,
            batch_id=batch_id,
            task_id=task_id,
            worktree_id=worktree_id,
            attempt=attempt,
            path=f"/wt/{task_id}/{attempt}",
            branch=f"plait/{task_id}",
            base_commit="c0",
        ),
        TaskStarted(
            run_id=RUN,
            batch_id=batch_id,
            task_id=task_id,
            worktree_id=worktree_id,
            attempt=attempt,
            command=["make", task_id],
        ),
        output(task_id, f"building {task_id}\n\ndone {task_id}\n", worktree_id, attempt, batch_id),
    ]


def succeed(batch_id: int, task_id: str, attempt: int = 1) -> TaskSucceeded:
    return TaskSucceeded(
        run_id=RUN,
        batch_id=batch_id,
        task_id=task_id,
        worktree_id=wt(task_id, attempt),
        attempt=attempt,
        commit=f"commit-{task_id}-{attempt}",
        changed_files=[f"{task_id}.py"],
        duration=2.5,
    )


def run_task(batch_id: int, task_id: str, attempt: int = 1) -> list[RunEvent]:
    return [*launch(batch_id, task_id, attempt), succeed(batch_id, task_id, attempt)]


def merge(batch_id: int, *task_ids: str, attempt: int = 1, onto: str = "c0") -> list[RunEvent]:
    return [
        MergeStarted(run_id=RUN, batch_id=batch_id, onto=onto),
        *(
            BranchMerged(
                run_id=RUN,
                batch_id=batch_id,
                task_id=t,
                worktree_id=wt(t, attempt),
                merge_commit=f"m-{t}",
            )
            for t in task_ids
        ),
    ]


def passing_tests(batch_id: int, commit: str) -> TestsPassed:
    return TestsPassed(
        run_id=RUN, batch_id=batch_id, commit=commit, command=TEST, exit_code=0, duration=1.0
    )


def failing_tests(batch_id: int, commit: str) -> TestsFailed:
    return TestsFailed(
        run_id=RUN,
        batch_id=batch_id,
        commit=commit,
        command=TEST,
        exit_code=1,
        duration=1.0,
        output_tail="1 failed",
    )


def land(batch_id: int, before: str, after: str) -> list[RunEvent]:
    return [
        passing_tests(batch_id, after),
        BatchLanded(run_id=RUN, batch_id=batch_id, before=before, after=after),
    ]


def complete_batch(batch_id: int) -> BatchCompleted:
    return BatchCompleted(run_id=RUN, batch_id=batch_id, merge_status="success", duration=9.0)


def remove(task_id: str, attempt: int = 1) -> WorktreeRemoved:
    return WorktreeRemoved(run_id=RUN, task_id=task_id, worktree_id=wt(task_id, attempt))


def finish(commit: str) -> RunCompleted:
    return RunCompleted(run_id=RUN, landed_commit=commit, landed_on="main", land_command=None)


def happy_path() -> list[RunEvent]:
    return [
        *begin(["a", "b"], ["c"]),
        start_batch(1, "a", "b"),
        *launch(1, "a"),
        *launch(1, "b"),
        succeed(1, "b"),
        succeed(1, "a"),
        *merge(1, "a", "b"),
        *land(1, "c0", "m-b"),
        complete_batch(1),
        remove("a"),
        remove("b"),
        start_batch(2, "c"),
        *run_task(2, "c"),
        *merge(2, "c", onto="m-b"),
        *land(2, "m-b", "m-c"),
        complete_batch(2),
        remove("c"),
        finish("m-c"),
    ]


def stamped(events: Sequence[DomainEvent]) -> list[tuple[DomainEvent, str]]:
    return [(event, f"2026-01-01T00:00:{i:02d}Z") for i, event in enumerate(events)]


def statuses(state: RunState) -> dict[str, str]:
    return {task_id: task.status for task_id, task in state.tasks.items()}


# --- realistic runs ------------------------------------------------------------------------


def test_a_happy_run_replays_to_a_landed_run_with_every_batch_landed() -> None:
    state = replay(stamped(happy_path()))

    assert state.status == "landed"
    assert (state.batches_total, state.completed_batches, state.current_batch) == (2, 2, 2)
    assert (state.landed_commit, state.result_commit, state.landed_on) == ("m-c", "m-c", "main")
    assert not state.landable
    assert statuses(state) == {"a": "landed", "b": "landed", "c": "landed"}
    assert [b.status for b in state.batches.values()] == ["completed", "completed"]
    a = state.tasks["a"]
    assert (a.attempt, a.worktree_id, a.branch, a.commit) == (1, "wt-a-1", "plait/a", "commit-a-1")
    assert (a.last_output_line, a.changed_files, a.duration) == ("done a", ["a.py"], 2.5)


def test_the_status_view_has_the_seed_status_fields() -> None:
    events = stamped(happy_path()[:5])  # up to the first task's worktree
    view = replay(events).status_view()

    assert view["execution_mode"] == "parallel"
    assert view["parallel_started_at"] == "2026-01-01T00:00:01Z"
    assert (view["batches_total"], view["current_batch"], view["completed_batches"]) == (2, 1, 0)
    assert [b["status"] for b in view["batches"]] == ["running", "pending"]
    assert [(t["task_id"], t["status"]) for t in view["tasks"]] == [
        ("a", "pending"),
        ("b", "pending"),
        ("c", "pending"),
    ]
    assert json.loads(json.dumps(view)) == view


def test_a_conflicted_task_is_requeued_and_rerun_on_the_new_tip() -> None:
    state = replay(
        [
            *begin(["a", "b"]),
            start_batch(1, "a", "b"),
            *run_task(1, "a"),
            *run_task(1, "b"),
            *merge(1, "a"),
            MergeConflicted(
                run_id=RUN, batch_id=1, task_id="b", worktree_id=wt("b"), files=["shared.py"]
            ),
        ]
    )
    assert state.tasks["b"].status == "conflicted"
    assert state.tasks["b"].conflict_files == ["shared.py"]

    for event in [
        *land(1, "c0", "m-a"),
        FellBackToSequential(run_id=RUN, batch_id=1, reason="b conflicted", task_ids=["b"]),
        TaskRequeued(run_id=RUN, batch_id=1, task_id="b", reason="conflict on shared.py"),
        remove("b"),  # the conflicted attempt's worktree: the task is already waiting again
        *run_task(1, "b", attempt=2),
        *merge(1, "b", attempt=2, onto="m-a"),
        *land(1, "m-a", "m-b"),
        complete_batch(1),
        remove("a"),
        remove("b", attempt=2),
        finish("m-b"),
    ]:
        state.apply(event)

    b = state.tasks["b"]
    assert (b.status, b.attempt, b.worktree_id, b.conflict_files) == ("landed", 2, "wt-b-2", [])
    assert state.batches[1].status == "completed"
    assert state.batches[1].fell_back_reason == "b conflicted"
    assert state.batches[1].conflicts == [{"task_id": "b", "files": ["shared.py"]}]
    assert state.status == "landed"


def test_a_culprit_is_ejected_and_the_rest_is_merged_again_and_landed() -> None:
    state = replay(
        [
            *begin(["a", "b", "c"]),
            start_batch(1, "a", "b", "c"),
            *run_task(1, "a"),
            *run_task(1, "b"),
            *run_task(1, "c"),
            *merge(1, "a", "b", "c"),
            failing_tests(1, "m-c"),
            passing_tests(1, "m-a"),
            failing_tests(1, "m-b"),
            CulpritFound(run_id=RUN, batch_id=1, task_id="b", output_tail="1 failed"),
            *merge(1, "c", onto="m-a"),  # the chain without b; c merges again
            *land(1, "c0", "m-c"),
            BatchFailed(
                run_id=RUN, batch_id=1, merge_status="test_failed", errors=["b broke the tests"]
            ),
            remove("b"),
            RunFailed(run_id=RUN, error="task b broke the tests"),
        ]
    )

    assert statuses(state) == {"a": "landed", "b": "ejected", "c": "landed"}
    batch = state.batches[1]
    assert (batch.status, batch.culprits, batch.errors) == (
        "failed",
        ["b"],
        ["b broke the tests"],
    )
    assert (batch.landed_before, batch.landed_after) == ("c0", "m-c")
    assert (state.status, state.error) == ("failed", "task b broke the tests")
    # The green part is tested on the run's branch; the base never moved.
    assert (state.result_commit, state.landed_commit, state.landable) == ("m-c", None, True)


def test_a_culprit_carries_the_tests_it_broke_and_a_red_verdict_which_tests_failed() -> None:
    red = TestsFailed(
        run_id=RUN,
        batch_id=1,
        commit="m-b",
        command=TEST,
        exit_code=0,
        duration=1.0,
        timed_out=True,
        failed_tests=["tests.test_app::test_add"],
        failed_count=1,
    )
    broke = CulpritFound(run_id=RUN, batch_id=1, task_id="b", broke_tests=["t::x", "t::y"])
    state = replay(
        [
            *begin(["a", "b"]),
            start_batch(1, "a", "b"),
            *run_task(1, "a"),
            *run_task(1, "b"),
            *merge(1, "a", "b"),
            red,
            broke,
        ]
    )
    batch, task = state.batches[1], state.tasks["b"]
    assert (batch.test_timed_out, batch.test_failed_tests) == (True, ["tests.test_app::test_add"])
    assert task.broke_tests == ["t::x", "t::y"]
    assert task.error == "ejected: the merged tests failed with this branch (it broke t::x, t::y)"


def test_a_refused_baseline_is_kept_in_the_state() -> None:
    refused = BaselineTested(
        run_id=RUN,
        command=TEST,
        passed=False,
        exit_code=127,
        problem="the test command could not run (exit 127: not found): pytest",
    )
    state = replay([*begin(["a"])[:2], refused, RunFailed(run_id=RUN, error="refused")])
    assert state.baseline_problem.startswith("the test command could not run")
    assert (state.baseline_allowed, state.status) == (False, "failed")


def test_a_flaky_test_run_is_recorded_without_blaming_a_task() -> None:
    flaky = TestsFlaky(run_id=RUN, batch_id=1, commit="m-a", command=TEST, output_tail="retry ok")
    state = replay([*begin(["a"]), start_batch(1, "a"), *run_task(1, "a"), *merge(1, "a"), flaky])
    state.apply(BatchLanded(run_id=RUN, batch_id=1, before="c0", after="m-a"))
    assert state.batches[1].flaky
    assert state.batches[1].culprits == []
    assert [r.flaky for r in state.batches[1].test_runs] == [True]
    assert state.tasks["a"].status == "landed"


def test_a_failed_task_is_retried_in_a_fresh_worktree() -> None:
    failure = TaskFailed(
        run_id=RUN,
        batch_id=1,
        task_id="a",
        worktree_id=wt("a"),
        attempt=1,
        exit_code=2,
        error="exit 2",
        will_retry=True,
    )
    state = replay([*begin(["a"]), start_batch(1, "a"), *launch(1, "a"), failure])
    a = state.tasks["a"]
    assert (a.status, a.error, a.exit_code, a.will_retry) == ("pending", "exit 2", 2, True)

    for event in [remove("a"), *run_task(1, "a", attempt=2), *merge(1, "a", attempt=2)]:
        state.apply(event)
    assert (a.status, a.attempt, a.worktree_id, a.error) == ("succeeded", 2, "wt-a-2", None)
    # The attempts are kept apart: each with its own worktree and outcome.
    assert [(t.attempt, t.worktree_id, t.status) for t in a.attempts] == [
        (1, "wt-a-1", "failed"),
        (2, "wt-a-2", "succeeded"),
    ]


def test_a_failure_that_is_not_retried_fails_the_batch_and_the_run() -> None:
    failure = TaskFailed(
        run_id=RUN,
        batch_id=1,
        task_id="a",
        worktree_id=wt("a"),
        attempt=1,
        exit_code=None,
        error="timed out",
    )
    state = replay(
        [
            *begin(["a"]),
            start_batch(1, "a"),
            *launch(1, "a"),
            failure,
            BatchFailed(run_id=RUN, batch_id=1, merge_status="skipped", errors=["a: timed out"]),
            WorkKept(run_id=RUN, task_id="a", branch="plait/a", reason="unlanded work"),
            RunFailed(run_id=RUN, error="batch 1 failed"),
        ]
    )
    assert (state.tasks["a"].status, state.tasks["a"].kept_branch) == ("failed", "plait/a")
    assert (state.batches[1].status, state.status) == ("failed", "failed")


def stopped_mid_batch() -> list[RunEvent]:
    interrupted = [
        TaskInterrupted(
            run_id=RUN, batch_id=1, task_id=t, worktree_id=wt(t), attempt=1, reason="stop"
        )
        for t in ("a", "b")
    ]
    return [
        *begin(["a", "b"], ["c"]),
        start_batch(1, "a", "b"),
        *launch(1, "a"),
        *launch(1, "b"),
        StopRequested(run_id=RUN, reason="user"),
        *interrupted,
        RunStopped(run_id=RUN, reason="user"),
    ]


def test_a_stop_interrupts_the_tasks_and_cancels_the_running_batch() -> None:
    state = replay(stopped_mid_batch())
    assert (state.status, state.stop_reason) == ("stopped", "user")
    assert [b.status for b in state.batches.values()] == ["cancelled", "pending"]
    assert statuses(state) == {"a": "pending", "b": "pending", "c": "pending"}
    assert [t.interrupted for t in state.tasks["a"].attempts] == [True]
    assert state.tasks["a"].error == "interrupted: stop"


def test_a_stopped_run_resumes_and_reruns_the_cancelled_batch() -> None:
    state = replay(
        [
            *stopped_mid_batch(),
            RunResumed(run_id=RUN, reason="user"),
            remove("a"),
            start_batch(1, "a", "b"),
            *run_task(1, "a", attempt=2),
            *run_task(1, "b", attempt=2),
            *merge(1, "a", "b", attempt=2),
            *land(1, "c0", "m-b"),
            complete_batch(1),
            start_batch(2, "c"),
            *run_task(2, "c"),
            *merge(2, "c", onto="m-b"),
            *land(2, "m-b", "m-c"),
            complete_batch(2),
            finish("m-c"),
        ]
    )
    assert (state.status, state.resumes, state.stop_reason) == ("landed", 1, None)
    assert state.completed_batches == 2
    assert state.tasks["a"].attempt == 2


def test_a_crashed_run_resumes_from_running_and_cancels_what_was_in_flight() -> None:
    crashed = [*begin(["a"]), start_batch(1, "a"), *launch(1, "a"), *merge(1)]
    state = replay(crashed)
    assert state.batches[1].status == "merging"

    state.apply(RunResumed(run_id=RUN, reason="recovered after a crash"))
    assert (state.status, state.batches[1].status) == ("running", "cancelled")
    state.apply(
        TaskInterrupted(run_id=RUN, batch_id=1, task_id="a", worktree_id=wt("a"), attempt=1)
    )
    state.apply(start_batch(1, "a"))
    assert (state.tasks["a"].status, state.batches[1].status) == ("pending", "running")


def test_output_keeps_the_last_non_empty_line_truncated() -> None:
    state = replay([*begin(["a"]), start_batch(1, "a"), *launch(1, "a")])
    state.apply(output("a", "x" * 900 + "\n  \n"))
    assert state.tasks["a"].last_output_line == "x" * 500

    state.apply(output("a", "\n\n"))
    assert state.tasks["a"].last_output_line == "x" * 500


def test_late_output_is_accepted_and_output_of_an_old_worktree_is_ignored() -> None:
    state = replay([*begin(["a"]), start_batch(1, "a"), *run_task(1, "a")])
    state.apply(output("a", "flushed late"))
    state.apply(output("a", "stale", worktree_id="old"))
    assert state.tasks["a"].last_output_line == "flushed late"


def test_a_whole_run_falls_back_to_sequential_mode() -> None:
    fallback = FellBackToSequential(run_id=RUN, reason="worktrees unavailable")
    state = replay([*begin(["a", "b"]), fallback])
    view = state.status_view()
    assert (view["execution_mode"], view["reason"]) == ("sequential", "worktrees unavailable")
    assert view["parallel_started_at"] is None


# --- snapshots: the same fold for a projection -------------------------------------------


def test_a_snapshot_survives_json_and_restores_the_same_state() -> None:
    state = replay(stamped(happy_path()[:20]))
    snapshot = json.loads(json.dumps(state.to_json_dict()))
    restored = RunState.from_json_dict(snapshot)
    assert restored == state
    assert restored.to_json_dict() == state.to_json_dict()


def test_a_projection_applying_one_event_per_snapshot_matches_replay() -> None:
    row = initial_state().to_json_dict()
    for event, recorded_at in stamped(happy_path()):
        stored = from_stored(event.TYPE, event.SCHEMA_VERSION, to_data(event))
        state = apply(RunState.from_json_dict(row), stored, recorded_at)
        row = json.loads(json.dumps(state.to_json_dict()))
    assert row == replay(stamped(happy_path())).to_json_dict()


def test_snapshot_keys_this_version_does_not_know_are_ignored() -> None:
    snapshot = replay(happy_path()).to_json_dict()
    snapshot["added_later"] = True
    snapshot["tasks"][0]["added_later"] = True
    assert RunState.from_json_dict(snapshot) == replay(happy_path())


# --- corrupted histories -----------------------------------------------------------------

SUCCEEDED_EARLY = [*begin(["a"]), start_batch(1, "a"), *launch(1, "a")[:1], succeed(1, "a")]
LANDED_TWICE = [
    *begin(["a"]),
    start_batch(1, "a"),
    *run_task(1, "a"),
    *merge(1, "a"),
    *land(1, "c0", "m-a"),
    BatchLanded(run_id=RUN, batch_id=1, before="c0", after="m-a"),
]
CORRUPTED = {
    "task succeeded before it started": SUCCEEDED_EARLY,
    "batch landed twice": LANDED_TWICE,
    "event before the run was created": [start_batch(1, "a")],
    "run created twice": [created(["a"]), created(["a"])],
    "batch started before the run started": [created(["a"]), start_batch(1, "a")],
    "unknown task": [*begin(["a"]), start_batch(1, "a"), *launch(1, "zz")],
    "unknown batch": [*begin(["a"]), MergeStarted(run_id=RUN, batch_id=9, onto="c0")],
    "branch merged outside a merge": [
        *begin(["a"]),
        start_batch(1, "a"),
        *run_task(1, "a"),
        *merge(1, "a")[1:],
    ],
    "task started in another worktree": [
        *begin(["a"]),
        start_batch(1, "a"),
        *launch(1, "a")[:1],
        TaskStarted(
            run_id=RUN, batch_id=1, task_id="a", worktree_id="wt-x", attempt=1, command=["x"]
        ),
    ],
    "worktree removed twice": [*happy_path()[:-1], remove("c")],
    "batch started after the run completed": [*happy_path(), start_batch(1, "a")],
    "event of another run": [
        *begin(["a"]),
        BatchStarted(run_id="run-2", batch_id=1, task_ids=["a"], can_parallel=False),
    ],
    "culprit outside testing": [
        *begin(["a"]),
        start_batch(1, "a"),
        *run_task(1, "a"),
        CulpritFound(run_id=RUN, batch_id=1, task_id="a"),
    ],
    "resumed after completion": [*happy_path(), RunResumed(run_id=RUN)],
}


@pytest.mark.parametrize("history", CORRUPTED.values(), ids=CORRUPTED.keys())
def test_replaying_a_corrupted_history_raises_invalid_transition(
    history: list[RunEvent],
) -> None:
    with pytest.raises(InvalidTransition):
        replay(history)


def test_a_refused_event_leaves_the_state_unchanged() -> None:
    state = replay(happy_path()[:12])
    before = state.to_json_dict()
    with pytest.raises(InvalidTransition):
        state.apply(succeed(1, "a"))
    assert state.to_json_dict() == before


def test_a_project_stream_event_is_not_folded_into_a_run() -> None:
    with pytest.raises(TypeError, match="ProjectRegistered"):
        initial_state().apply(ProjectRegistered(project_id="p", name="n", repo_path="/r"))


def test_ten_thousand_tasks_replay_through_the_shared_machines() -> None:
    task_ids = [f"t{i}" for i in range(10_000)]
    events: list[RunEvent] = [*begin(task_ids), start_batch(1, *task_ids)]
    for task_id in task_ids:
        events += [launch(1, task_id)[0], launch(1, task_id)[1], succeed(1, task_id)]
    events += merge(1, *task_ids)
    state = replay(events)
    assert set(statuses(state).values()) == {"succeeded"}
