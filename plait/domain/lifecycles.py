"""Lifecycles of a run, its batches and its tasks, as shared `transitions` machines.

The states are the words of plait.domain.statuses (TaskStatus, RunStatus, BatchStatus):
what a user reads is what the lifecycle is in. Each lifecycle TYPE has exactly one
`transitions.Machine(model=None, ...)`, built once at import (pure: no I/O). Entities never
get a machine of their own and are never added to one: `Lifecycle.next_state` looks the
transition up (`machine.get_transitions`); the run fold uses it. `Lifecycle.fire` runs a
trigger on any live object with a `status` attribute through the shared machine's event.
Nothing is registered per entity, so nothing has to be removed and a long-lived process
cannot leak models. An illegal trigger raises `InvalidTransition`, never transitions'
`MachineError`. No callbacks are attached: replay must not re-run effects. What each state
leads to on resume is plait.domain.run.decide's (RESUME_TASK, RESUME_BATCH, RESUME_RUN),
checked against these machines when it is imported.

Run (the event that fires each trigger, from plait.domain.run):

    trigger       from                         to         event
    start         pending                      running    ExecutionModeSelected (first)
    request_stop  pending, running, stopping   stopping   StopRequested (repeat is harmless)
    land          running, stopping            landed     RunCompleted (the base moved)
    keep          running, stopping            kept       RunCompleted (left on its branch)
    succeed       running, stopping            succeeded  RunCompleted (nothing to land)
    fail          pending, running, stopping   failed     RunFailed
    stop          pending, running, stopping   stopped    RunStopped
    resume        stopped, failed, kept,       running    RunResumed
                  running

    running -> landed | kept | succeeded | failed | stopped directly: a run may end without
    a stop request, and recovery may stop a run outright. running -> running on resume: a
    crash left the run "running" with no terminal event. A failed run is resumable because
    the history cannot tell a crash from a real failure; the orchestrator decides. A kept
    run resumes only to land (`plait land`).

Batch:

    trigger     from                                         to           event
    start       pending, cancelled, failed, landed,          running      BatchStarted
                completed
    merge       running, testing                             merging      MergeStarted
    test        merging, testing                             testing      TestsPassed/Failed/Flaky
    land        merging, testing                             landed       BatchLanded
    fall_back   running, merging, landed                     running      FellBackToSequential
    complete    landed                                       completed    BatchCompleted
    fail        running, merging, testing, landed            failed       BatchFailed
    cancel      running, merging, testing                    cancelled    RunStopped, RunResumed,
                                                                          BatchFailed (cancelled)

    merging -> landed when there is no test command. testing -> testing while bisecting for
    a culprit; testing -> merging to re-merge the rest once the culprit is ejected. landed ->
    running when conflicted tasks re-run one by one on the new tip. A failure end may follow
    a landing (the green prefix landed, a culprit did not). Resuming restarts a cancelled
    (or failed) batch, one a crash left landed, and a completed one whose task a user retried.

Task (one task and the worktree of its current attempt):

    trigger    from                       to          event
    provision  pending                    pending     WorktreeCreated
               rerun                      rerun
    start      pending, rerun             running     TaskStarted
    succeed    running                    succeeded   TaskSucceeded
    find_no_change running                no_change   TaskChangedNothing (allowed: no)
    fail       pending, rerun, running    failed      TaskFailed
    retry      failed                     pending     TaskFailed (will_retry), after `fail`
    merge      succeeded                  succeeded   BranchMerged
    conflict   succeeded                  conflicted  MergeConflicted
    eject      succeeded                  ejected     CulpritFound
    land       succeeded                  landed      BatchLanded (the batch's merged tasks)
    requeue    conflicted                 rerun       TaskRequeued (a conflict: run again)
               failed, no_change,         pending     TaskRequeued (a resume, a retry)
               ejected, kept, skipped
    resolve    rerun                      resolving   ConflictResolutionStarted
    resolved   resolving                  succeeded   ConflictResolved
    give_up    resolving                  rerun       ConflictResolutionFailed (then re-run)
    interrupt  running, resolving         pending     TaskInterrupted
    keep       conflicted                 kept        WorkKept (the conflict persisted)
    skip       pending, rerun, failed,    skipped     TaskSkipped
               no_change, conflicted,
               ejected, kept

    Every attempt gets a fresh worktree (WorktreeCreated) while the task waits, `pending` or
    `rerun`. succeeded -> succeeded on merge: after an ejection the rest of the chain is
    merged again. Removing a worktree changes no status: a landed task stays landed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from enum import StrEnum
from typing import Any, Generic, Protocol, TypeVar

from transitions import Machine, MachineError

from plait.domain.errors import InvalidTransition
from plait.domain.statuses import BatchStatus, RunStatus, TaskStatus

S = TypeVar("S", bound=StrEnum)
TransitionSpec = tuple[str, str | Sequence[str], str]


class HasStatus(Protocol):
    """Anything a lifecycle can drive: its state lives in `status`."""

    @property
    def status(self) -> str: ...


class Lifecycle(Generic[S]):
    """One lifecycle type: a name, its states (the members of `kind`) and one shared,
    model-less Machine."""

    def __init__(
        self,
        entity: str,
        kind: type[S],
        transitions: Iterable[TransitionSpec],
        initial: S,
    ) -> None:
        self.entity = entity
        self.kind = kind
        self.initial = initial
        self.states: tuple[S, ...] = tuple(kind)
        # Plain strings: transitions names Enum states by their member names (PENDING).
        self.machine = Machine(
            model=None,
            states=[str(state) for state in self.states],
            transitions=[
                {"trigger": trigger, "source": _listed(source), "dest": str(dest)}
                for trigger, source, dest in transitions
            ],
            initial=str(initial),
            auto_transitions=False,
            ignore_invalid_triggers=False,
            model_attribute="status",
            name=entity,
        )
        # The machine's own table, read once: a replay looks up every event's transition.
        self._next: dict[tuple[str, str], S] = {
            (source, trigger): kind(dest) for trigger, source, dest in self.transitions_table()
        }

    @property
    def triggers(self) -> tuple[str, ...]:
        return tuple(self.machine.events)

    def can(self, state: str, trigger: str) -> bool:
        return bool(self.machine.get_transitions(trigger=trigger, source=str(state)))

    def next_state(self, state: str, trigger: str, entity_id: str | None = None) -> S:
        """The state `trigger` leads to from `state`; InvalidTransition if it is not allowed."""
        dest = self._next.get((str(state), trigger))
        if dest is None:
            raise InvalidTransition(self._name(entity_id), str(state), trigger)
        return dest

    def fire(self, model: Any, trigger: str, entity_id: str | None = None) -> S:
        """Run `trigger` on `model` (anything with a settable `status`) through the shared
        machine and return its new status."""
        state = str(model.status)
        event = self.machine.events.get(trigger)
        if event is None or state not in self.machine.states:
            raise InvalidTransition(self._name(entity_id), state, trigger)
        model.status = state  # transitions would read an Enum member by its name (PENDING)
        try:
            event.trigger(model)
        except MachineError as error:
            model.status = self.kind(state)
            raise InvalidTransition(self._name(entity_id), state, trigger) from error
        model.status = self.kind(model.status)
        return self.kind(model.status)

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
    return [str(source)] if isinstance(source, str) else [str(s) for s in source]


T, R, B = TaskStatus, RunStatus, BatchStatus

RUN = Lifecycle(
    "run",
    kind=RunStatus,
    transitions=(
        ("start", R.PENDING, R.RUNNING),
        ("request_stop", (R.PENDING, R.RUNNING, R.STOPPING), R.STOPPING),
        ("land", (R.RUNNING, R.STOPPING), R.LANDED),
        ("keep", (R.RUNNING, R.STOPPING), R.KEPT),
        ("succeed", (R.RUNNING, R.STOPPING), R.SUCCEEDED),
        ("fail", (R.PENDING, R.RUNNING, R.STOPPING), R.FAILED),
        ("stop", (R.PENDING, R.RUNNING, R.STOPPING), R.STOPPED),
        ("resume", (R.STOPPED, R.FAILED, R.KEPT, R.RUNNING), R.RUNNING),
    ),
    initial=R.PENDING,
)

_BATCH_IN_FLIGHT = (B.RUNNING, B.MERGING, B.TESTING)
_BATCH_ENDABLE = (*_BATCH_IN_FLIGHT, B.LANDED)
_BATCH_RESTARTABLE = (B.PENDING, B.CANCELLED, B.FAILED, B.LANDED, B.COMPLETED)

BATCH = Lifecycle(
    "batch",
    kind=BatchStatus,
    transitions=(
        ("start", _BATCH_RESTARTABLE, B.RUNNING),
        ("merge", (B.RUNNING, B.TESTING), B.MERGING),
        ("test", (B.MERGING, B.TESTING), B.TESTING),
        ("land", (B.MERGING, B.TESTING), B.LANDED),
        ("fall_back", (B.RUNNING, B.MERGING, B.LANDED), B.RUNNING),
        ("complete", B.LANDED, B.COMPLETED),
        ("fail", _BATCH_ENDABLE, B.FAILED),
        ("cancel", _BATCH_IN_FLIGHT, B.CANCELLED),
    ),
    initial=B.PENDING,
)

TASK = Lifecycle(
    "task",
    kind=TaskStatus,
    transitions=(
        ("provision", T.PENDING, T.PENDING),
        ("provision", T.RERUN, T.RERUN),
        ("start", (T.PENDING, T.RERUN), T.RUNNING),
        ("succeed", T.RUNNING, T.SUCCEEDED),
        ("find_no_change", T.RUNNING, T.NO_CHANGE),
        ("fail", (T.PENDING, T.RERUN, T.RUNNING), T.FAILED),
        ("retry", T.FAILED, T.PENDING),
        ("merge", T.SUCCEEDED, T.SUCCEEDED),
        ("conflict", T.SUCCEEDED, T.CONFLICTED),
        ("eject", T.SUCCEEDED, T.EJECTED),
        ("land", T.SUCCEEDED, T.LANDED),
        ("requeue", T.CONFLICTED, T.RERUN),
        ("requeue", (T.FAILED, T.NO_CHANGE, T.EJECTED, T.KEPT, T.SKIPPED), T.PENDING),
        ("resolve", T.RERUN, T.RESOLVING),
        ("resolved", T.RESOLVING, T.SUCCEEDED),
        ("give_up", T.RESOLVING, T.RERUN),
        ("interrupt", (T.RUNNING, T.RESOLVING), T.PENDING),
        ("keep", T.CONFLICTED, T.KEPT),
        (
            "skip",
            (T.PENDING, T.RERUN, T.FAILED, T.NO_CHANGE, T.CONFLICTED, T.EJECTED, T.KEPT),
            T.SKIPPED,
        ),
    ),
    initial=T.PENDING,
)

LIFECYCLES: tuple[Lifecycle[Any], ...] = (RUN, BATCH, TASK)
