"""Run, batch and task lifecycles: every legal transition, illegal ones, one machine per type."""

from __future__ import annotations

import gc
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import pytest
from transitions import Machine, MachineError

from plait.domain.errors import InvalidTransition
from plait.domain.lifecycles import BATCH, LIFECYCLES, RUN, TASK, Lifecycle
from plait.domain.statuses import BatchStatus, RunStatus, TaskStatus

RUN_TABLE = {
    ("start", "pending", "running"),
    ("request_stop", "pending", "stopping"),
    ("request_stop", "running", "stopping"),
    ("request_stop", "stopping", "stopping"),
    *{(trigger, s, dest) for trigger, dest in (("land", "landed"), ("keep", "kept"),
                                                ("succeed", "succeeded"))
      for s in ("running", "stopping")},
    ("fail", "pending", "failed"),
    ("fail", "running", "failed"),
    ("fail", "stopping", "failed"),
    ("stop", "pending", "stopped"),
    ("stop", "running", "stopped"),
    ("stop", "stopping", "stopped"),
    ("resume", "stopped", "running"),
    ("resume", "failed", "running"),
    ("resume", "kept", "running"),
    ("resume", "running", "running"),
}  # fmt: skip

BATCH_ENDS = ("running", "merging", "testing", "landed")
BATCH_TABLE = {
    *{
        ("start", s, "running")
        for s in ("pending", "cancelled", "failed", "landed", "completed")
    },
    ("merge", "running", "merging"),
    ("merge", "testing", "merging"),
    ("test", "merging", "testing"),
    ("test", "testing", "testing"),
    ("land", "merging", "landed"),
    ("land", "testing", "landed"),
    ("fall_back", "running", "running"),
    ("fall_back", "merging", "running"),
    ("fall_back", "landed", "running"),
    ("complete", "landed", "completed"),
    *{("fail", s, "failed") for s in BATCH_ENDS},
    *{("cancel", s, "cancelled") for s in ("running", "merging", "testing")},
}  # fmt: skip

TASK_TABLE = {
    ("provision", "pending", "pending"),
    ("provision", "rerun", "rerun"),
    ("start", "pending", "running"),
    ("start", "rerun", "running"),
    ("succeed", "running", "succeeded"),
    ("find_no_change", "running", "no_change"),
    ("fail", "pending", "failed"),
    ("fail", "rerun", "failed"),
    ("fail", "running", "failed"),
    ("retry", "failed", "pending"),
    ("merge", "succeeded", "succeeded"),
    ("conflict", "succeeded", "conflicted"),
    ("eject", "succeeded", "ejected"),
    ("land", "succeeded", "landed"),
    ("requeue", "conflicted", "rerun"),
    *{("requeue", s, "pending") for s in ("failed", "no_change", "ejected", "kept", "skipped")},
    ("resolve", "rerun", "resolving"),
    ("resolved", "resolving", "succeeded"),
    ("give_up", "resolving", "rerun"),
    ("interrupt", "running", "pending"),
    ("interrupt", "resolving", "pending"),
    ("keep", "conflicted", "kept"),
    *{
        ("skip", s, "skipped")
        for s in ("pending", "rerun", "failed", "no_change", "conflicted", "ejected", "kept")
    },
}

TABLES: dict[str, tuple[Lifecycle[Any], set[tuple[str, str, str]]]] = {
    "run": (RUN, RUN_TABLE),
    "batch": (BATCH, BATCH_TABLE),
    "task": (TASK, TASK_TABLE),
}
LEGAL = [
    pytest.param(lifecycle, trigger, source, dest, id=f"{name}-{trigger}-{source}")
    for name, (lifecycle, table) in TABLES.items()
    for trigger, source, dest in sorted(table)
]

ILLEGAL: list[tuple[Lifecycle[Any], str, str]] = [
    (RUN, "start", "running"),
    (RUN, "land", "pending"),
    (RUN, "land", "landed"),
    (RUN, "resume", "landed"),
    (RUN, "resume", "succeeded"),
    (RUN, "resume", "stopping"),
    (RUN, "stop", "stopped"),
    (RUN, "request_stop", "landed"),
    (BATCH, "start", "running"),
    (BATCH, "merge", "pending"),
    (BATCH, "land", "landed"),
    (BATCH, "land", "running"),
    (BATCH, "complete", "testing"),
    (BATCH, "complete", "completed"),
    (BATCH, "cancel", "pending"),
    (BATCH, "cancel", "completed"),
    (BATCH, "test", "running"),
    (TASK, "succeed", "pending"),
    (TASK, "succeed", "succeeded"),
    (TASK, "merge", "running"),
    (TASK, "merge", "failed"),
    (TASK, "land", "failed"),
    (TASK, "land", "landed"),
    (TASK, "retry", "succeeded"),
    (TASK, "requeue", "landed"),
    (TASK, "requeue", "succeeded"),
    (TASK, "provision", "landed"),
    (TASK, "interrupt", "succeeded"),
    (TASK, "interrupt", "pending"),
    (TASK, "skip", "landed"),
    (TASK, "skip", "running"),
    (TASK, "keep", "failed"),
]


@dataclass
class Entity:
    status: str


@pytest.mark.parametrize(("lifecycle", "trigger", "source", "dest"), LEGAL)
def test_a_legal_trigger_leads_to_its_destination(
    lifecycle: Lifecycle[Any], trigger: str, source: str, dest: str
) -> None:
    entity = Entity(source)
    assert lifecycle.next_state(source, trigger) == dest
    assert lifecycle.fire(entity, trigger) == dest
    assert entity.status == dest


@pytest.mark.parametrize(
    ("lifecycle", "trigger", "source"),
    [pytest.param(*case, id=f"{case[0].entity}-{case[1]}-{case[2]}") for case in ILLEGAL],
)
def test_an_illegal_trigger_raises_invalid_transition(
    lifecycle: Lifecycle[Any], trigger: str, source: str
) -> None:
    entity = Entity(source)
    with pytest.raises(InvalidTransition) as info:
        lifecycle.fire(entity, trigger, entity_id="x1")
    assert not isinstance(info.value, MachineError)
    assert isinstance(info.value.__cause__, MachineError)
    assert (info.value.entity, info.value.state, info.value.trigger) == (
        f"{lifecycle.entity} x1",
        source,
        trigger,
    )
    assert entity.status == source
    with pytest.raises(InvalidTransition):
        lifecycle.next_state(source, trigger)


@pytest.mark.parametrize("name", TABLES)
def test_the_machine_allows_exactly_the_drawn_table(name: str) -> None:
    lifecycle, table = TABLES[name]
    assert set(lifecycle.transitions_table()) == table


@pytest.mark.parametrize("name", TABLES)
def test_every_state_trigger_pair_outside_the_table_is_refused(name: str) -> None:
    lifecycle, table = TABLES[name]
    allowed = {(trigger, source) for trigger, source, _ in table}
    for state in lifecycle.states:
        for trigger in lifecycle.triggers:
            assert lifecycle.can(state, trigger) == ((trigger, state) in allowed)


@pytest.mark.parametrize(
    ("lifecycle", "words"), [(TASK, TaskStatus), (RUN, RunStatus), (BATCH, BatchStatus)]
)
def test_every_lifecycle_is_in_the_words_of_its_status_list(
    lifecycle: Lifecycle[Any], words: type[StrEnum]
) -> None:
    assert lifecycle.states == tuple(words)
    assert all(
        isinstance(lifecycle.next_state(s, t), words) for t, s, _ in lifecycle.transitions_table()
    )


def test_the_task_words_are_the_twelve_of_the_one_vocabulary() -> None:
    assert [str(s) for s in TaskStatus] == [
        "pending", "running", "resolving", "succeeded", "no_change", "failed", "conflicted",
        "rerun", "ejected", "landed", "kept", "skipped",
    ]  # fmt: skip


def test_an_unknown_trigger_or_state_raises_invalid_transition() -> None:
    with pytest.raises(InvalidTransition, match="'explode'"):
        TASK.fire(Entity("running"), "explode")
    with pytest.raises(InvalidTransition, match="'limbo'"):
        TASK.fire(Entity("limbo"), "start")
    with pytest.raises(InvalidTransition):
        TASK.next_state("running", "explode")


@pytest.mark.parametrize("lifecycle", LIFECYCLES, ids=lambda lc: lc.entity)
def test_each_lifecycle_has_one_shared_machine_without_models_or_auto_transitions(
    lifecycle: Lifecycle[Any],
) -> None:
    machine = lifecycle.machine
    assert isinstance(machine, Machine)
    assert machine.models == []
    assert not machine.auto_transitions
    assert not any(trigger.startswith("to_") for trigger in lifecycle.triggers)
    assert lifecycle.machine is machine
    assert len({id(lc.machine) for lc in LIFECYCLES}) == len(LIFECYCLES)


def _machines_alive() -> int:
    return sum(1 for obj in gc.get_objects() if isinstance(obj, Machine))


def test_ten_thousand_tasks_are_driven_without_creating_another_machine(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    created: list[Any] = []
    original_init = Machine.__init__

    def counting_init(self: Machine, *args: Any, **kwargs: Any) -> None:
        created.append(self)
        original_init(self, *args, **kwargs)

    monkeypatch.setattr(Machine, "__init__", counting_init)
    alive_before = _machines_alive()

    tasks = [Entity(TASK.initial) for _ in range(10_000)]
    for trigger in ("provision", "start", "succeed", "merge", "land"):
        for task in tasks:
            TASK.fire(task, trigger)

    assert {task.status for task in tasks} == {"landed"}
    assert created == []
    assert _machines_alive() == alive_before
    assert TASK.machine.models == []
