"""Lifecycles of a run, its batches and its tasks, as shared `transitions` machines.

Each lifecycle TYPE has exactly one `transitions.Machine(model=None, ...)`, built once at
import (pure: no I/O). Entities never get a machine of their own and are never added to
one: `Lifecycle.next_state` looks the transition up (`machine.get_transitions`); the run
fold uses it. `Lifecycle.fire` runs a trigger on any live object with a `status` attribute
through the shared machine's event. Nothing is registered per entity, so nothing has to
be removed and a long-lived process cannot leak models. An illegal trigger raises
`InvalidTransition`, never transitions' `MachineError`. No callbacks are attached: replay
must not re-run effects.

Run (the event that fires each trigger, from plait.domain.run):

    trigger       from                         to         event
    start         created                      running    ExecutionModeSelected (first)
    request_stop  created, running, stopping   stopping   StopRequested (repeat is harmless)
    complete      running, stopping            completed  RunCompleted
    fail          created, running, stopping   failed     RunFailed
    stop          created, running, stopping   stopped    RunStopped
    resume        stopped, failed, running     running    RunResumed

    running -> completed | failed | stopped directly: a run may end without a stop request,
    and recovery may stop a run outright. running -> running on resume: a crash left the
    run "running" with no terminal event. A failed run is resumable because the history
    cannot tell a crash from a real failure; the orchestrator decides.

Batch:

    trigger     from                                         to           event
    start       pending, cancelled, failed, conflicted,      running      BatchStarted
                test_failed
    merge       running, testing                             merging      MergeStarted
    test        merging, testing                             testing      TestsPassed/Failed/Flaky
    land        merging, testing                             landed       BatchLanded
    fall_back   running, merging, landed                     running      FellBackToSequential
    complete    landed                                       completed    BatchCompleted
    fail        running, merging, testing, landed            failed       BatchFailed (other)
    conflict    running, merging, testing, landed            conflicted   BatchFailed (conflicts)
    fail_tests  running, merging, testing, landed            test_failed  BatchFailed (test_failed)
    cancel      running, merging, testing                    cancelled    RunStopped, RunResumed,
                                                                          BatchFailed (cancelled)

    merging -> landed when there is no test command. testing -> testing while bisecting for
    a culprit; testing -> merging to re-merge the rest once the culprit is ejected. landed ->
    running when conflicted tasks re-run one by one on the new tip. A failure end may follow
    a landing (the green prefix landed, a culprit did not). Resuming restarts a cancelled
    (or failed) batch.

Task (one task and the worktree of its current attempt):

    trigger    from                       to          event
    provision  requested                  created     WorktreeCreated
    start      created                    running     TaskStarted
    succeed    running                    succeeded   TaskSucceeded
    find_no_change running                no_change   TaskChangedNothing (allowed: no)
    fail       created, running           failed      TaskFailed
    retry      failed                     requested   TaskFailed (will_retry), after `fail`
    merge      succeeded, merged          merged      BranchMerged
    conflict   succeeded, merged          conflicted  MergeConflicted
    eject      succeeded, merged          ejected     CulpritFound
    requeue    conflicted, failed,        requested   TaskRequeued
               no_change
    resolve    created                    resolving   ConflictResolutionStarted
    resolved   resolving                  succeeded   ConflictResolved
    give_up    resolving                  requested   ConflictResolutionFailed (then re-run)
    interrupt  created, running,          requested   TaskInterrupted
               resolving
    remove     merged, ejected, failed    removed     WorktreeRemoved

    `requested` means "waiting for a (new) worktree": a task to be retried, requeued after a
    conflict or re-run after an interruption goes back there, and every attempt gets a
    fresh worktree. merged -> merged/conflicted: after an ejection the rest of the chain is
    merged again. A failed task whose worktree was removed is finished; to re-run it (e.g.
    when a failed run is resumed) requeue it before removing its worktree.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

from transitions import Machine, MachineError

from plait.domain.errors import InvalidTransition

TransitionSpec = tuple[str, str | Sequence[str], str]


class HasStatus(Protocol):
    """Anything a lifecycle can drive: its state lives in `status`."""

    status: str


class Lifecycle:
    """One lifecycle type: a name, its states and one shared, model-less Machine."""

    def __init__(
        self,
        entity: str,
        states: Sequence[str],
        transitions: Iterable[TransitionSpec],
        initial: str,
    ) -> None:
        self.entity = entity
        self.initial = initial
        self.states: tuple[str, ...] = tuple(states)
        self.machine = Machine(
            model=None,
            states=list(self.states),
            transitions=[
                {"trigger": trigger, "source": _listed(source), "dest": dest}
                for trigger, source, dest in transitions
            ],
            initial=initial,
            auto_transitions=False,
            ignore_invalid_triggers=False,
            model_attribute="status",
            name=entity,
        )

    @property
    def triggers(self) -> tuple[str, ...]:
        return tuple(self.machine.events)

    def can(self, state: str, trigger: str) -> bool:
        return bool(self.machine.get_transitions(trigger=trigger, source=state))

    def next_state(self, state: str, trigger: str, entity_id: str | None = None) -> str:
        """The state `trigger` leads to from `state`; InvalidTransition if it is not allowed."""
        found = self.machine.get_transitions(trigger=trigger, source=state)
        if not found:
            raise InvalidTransition(self._name(entity_id), state, trigger)
        return str(found[0].dest)

    def fire(self, model: HasStatus, trigger: str, entity_id: str | None = None) -> str:
        """Run `trigger` on `model` through the shared machine and return its new status."""
        state = model.status
        event = self.machine.events.get(trigger)
        if event is None or state not in self.machine.states:
            raise InvalidTransition(self._name(entity_id), state, trigger)
        try:
            event.trigger(model)
        except MachineError as error:
            raise InvalidTransition(self._name(entity_id), state, trigger) from error
        return model.status

    def transitions_table(self) -> list[tuple[str, str, str]]:
        """Every legal (trigger, source, dest), e.g. for tests and documentation."""
        return [
            (trigger, str(t.source), str(t.dest))
            for trigger in self.triggers
            for t in self.machine.get_transitions(trigger=trigger)
        ]

    def _name(self, entity_id: str | None) -> str:
        return self.entity if entity_id is None else f"{self.entity} {entity_id}"


def _listed(source: str | Sequence[str]) -> list[str]:
    return [source] if isinstance(source, str) else list(source)


RUN = Lifecycle(
    "run",
    states=("created", "running", "stopping", "completed", "failed", "stopped"),
    transitions=(
        ("start", "created", "running"),
        ("request_stop", ("created", "running", "stopping"), "stopping"),
        ("complete", ("running", "stopping"), "completed"),
        ("fail", ("created", "running", "stopping"), "failed"),
        ("stop", ("created", "running", "stopping"), "stopped"),
        ("resume", ("stopped", "failed", "running"), "running"),
    ),
    initial="created",
)

_BATCH_IN_FLIGHT = ("running", "merging", "testing")
_BATCH_ENDABLE = (*_BATCH_IN_FLIGHT, "landed")

BATCH = Lifecycle(
    "batch",
    states=(
        "pending",
        "running",
        "merging",
        "testing",
        "landed",
        "completed",
        "failed",
        "conflicted",
        "test_failed",
        "cancelled",
    ),
    transitions=(
        ("start", ("pending", "cancelled", "failed", "conflicted", "test_failed"), "running"),
        ("merge", ("running", "testing"), "merging"),
        ("test", ("merging", "testing"), "testing"),
        ("land", ("merging", "testing"), "landed"),
        ("fall_back", ("running", "merging", "landed"), "running"),
        ("complete", "landed", "completed"),
        ("fail", _BATCH_ENDABLE, "failed"),
        ("conflict", _BATCH_ENDABLE, "conflicted"),
        ("fail_tests", _BATCH_ENDABLE, "test_failed"),
        ("cancel", _BATCH_IN_FLIGHT, "cancelled"),
    ),
    initial="pending",
)

TASK = Lifecycle(
    "task",
    states=(
        "requested",
        "created",
        "running",
        "resolving",
        "succeeded",
        "no_change",
        "failed",
        "merged",
        "conflicted",
        "ejected",
        "removed",
    ),
    transitions=(
        ("provision", "requested", "created"),
        ("start", "created", "running"),
        ("succeed", "running", "succeeded"),
        ("find_no_change", "running", "no_change"),
        ("fail", ("created", "running"), "failed"),
        ("retry", "failed", "requested"),
        ("merge", ("succeeded", "merged"), "merged"),
        ("conflict", ("succeeded", "merged"), "conflicted"),
        ("eject", ("succeeded", "merged"), "ejected"),
        ("requeue", ("conflicted", "failed", "no_change"), "requested"),
        ("resolve", "created", "resolving"),
        ("resolved", "resolving", "succeeded"),
        ("give_up", "resolving", "requested"),
        ("interrupt", ("created", "running", "resolving"), "requested"),
        ("remove", ("merged", "ejected", "failed"), "removed"),
    ),
    initial="requested",
)

LIFECYCLES: tuple[Lifecycle, ...] = (RUN, BATCH, TASK)
