"""Run, batch and task lifecycles: every legal transition, illegal ones, one machine per type."""

from __future__ import annotations

import gc
from dataclasses import dataclass
from typing import Any

import pytest
from transitions import Machine, MachineError

from plait.domain.errors import InvalidTransition
from plait.domain.lifecycles import BATCH, LIFECYCLES, RUN, TASK, Lifecycle

RUN_TABLE = {
    ("start", "created", "running"),
    ("request_stop", "created", "stopping"),
    ("request_stop", "running", "stopping"),
    ("request_stop", "stopping", "stopping"),
    ("complete", "running", "completed"),
    ("complete", "stopping", "completed"),
    ("fail", "created", "failed"),
    ("fail", "running", "failed"),
    ("fail", "stopping", "failed"),
    ("stop", "created", "stopped"),
    ("stop", "running", "stopped"),
    ("stop", "stopping", "stopped"),
    ("resume", "stopped", "running"),
    ("resume", "failed", "running"),
    ("resume", "running", "running"),
}

BATCH_ENDS = ("running", "merging", "testing", "landed")
BATCH_TABLE = {
    *{
        ("start", s, "running")
        for s in ("pending", "cancelled", "failed", "conflicted", "test_failed")
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
    *{("conflict", s, "conflicted") for s in BATCH_ENDS},
    *{("fail_tests", s, "test_failed") for s in BATCH_ENDS},
    *{("cancel", s, "cancelled") for s in ("running", "merging", "testing")},
}

TASK_TABLE = {
    ("provision", "requested", "created"),
    ("start", "created", "running"),
    ("succeed", "running", "succeeded"),
    ("find_no_change", "running", "no_change"),
    ("fail", "created", "failed"),
    ("fail", "running", "failed"),
    ("retry", "failed", "requested"),
    ("merge", "succeeded", "merged"),
    ("merge", "merged", "merged"),
    ("conflict", "succeeded", "conflicted"),
    ("conflict", "merged", "conflicted"),
    ("eject", "succeeded", "ejected"),
    ("eject", "merged", "ejected"),
    ("requeue", "conflicted", "requested"),
    ("requeue", "failed", "requested"),
    ("requeue", "no_change", "requested"),
    ("resolve", "created", "resolving"),
    ("resolved", "resolving", "succeeded"),
    ("give_up", "resolving", "requested"),
    ("interrupt", "created", "requested"),
    ("interrupt", "running", "requested"),
    ("interrupt", "resolving", "requested"),
    ("remove", "merged", "removed"),
    ("remove", "ejected", "removed"),
    ("remove", "failed", "removed"),
}

TABLES = {"run": (RUN, RUN_TABLE), "batch": (BATCH, BATCH_TABLE), "task": (TASK, TASK_TABLE)}
LEGAL = [
    pytest.param(lifecycle, trigger, source, dest, id=f"{name}-{trigger}-{source}")
    for name, (lifecycle, table) in TABLES.items()
    for trigger, source, dest in sorted(table)
]

ILLEGAL = [
    (RUN, "start", "running"),
    (RUN, "complete", "created"),
    (RUN, "complete", "completed"),
    (RUN, "resume", "completed"),
    (RUN, "resume", "stopping"),
    (RUN, "stop", "stopped"),
    (RUN, "request_stop", "completed"),
    (BATCH, "start", "running"),
    (BATCH, "start", "completed"),
    (BATCH, "merge", "pending"),
    (BATCH, "land", "landed"),
    (BATCH, "land", "running"),
    (BATCH, "complete", "testing"),
    (BATCH, "complete", "completed"),
    (BATCH, "cancel", "pending"),
    (BATCH, "cancel", "completed"),
    (BATCH, "test", "running"),
    (TASK, "start", "requested"),
    (TASK, "succeed", "created"),
    (TASK, "succeed", "succeeded"),
    (TASK, "merge", "running"),
    (TASK, "merge", "failed"),
    (TASK, "retry", "succeeded"),
    (TASK, "requeue", "merged"),
    (TASK, "remove", "running"),
    (TASK, "remove", "removed"),
    (TASK, "provision", "removed"),
    (TASK, "interrupt", "succeeded"),
]


@dataclass
class Entity:
    status: str


@pytest.mark.parametrize(("lifecycle", "trigger", "source", "dest"), LEGAL)
def test_a_legal_trigger_leads_to_its_destination(
    lifecycle: Lifecycle, trigger: str, source: str, dest: str
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
    lifecycle: Lifecycle, trigger: str, source: str
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


def test_an_unknown_trigger_or_state_raises_invalid_transition() -> None:
    with pytest.raises(InvalidTransition, match="'explode'"):
        TASK.fire(Entity("running"), "explode")
    with pytest.raises(InvalidTransition, match="'limbo'"):
        TASK.fire(Entity("limbo"), "start")
    with pytest.raises(InvalidTransition):
        TASK.next_state("running", "explode")


@pytest.mark.parametrize("lifecycle", LIFECYCLES, ids=lambda lc: lc.entity)
def test_each_lifecycle_has_one_shared_machine_without_models_or_auto_transitions(
    lifecycle: Lifecycle,
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
    for trigger in ("provision", "start", "succeed", "merge", "remove"):
        for task in tasks:
            TASK.fire(task, trigger)

    assert {task.status for task in tasks} == {"removed"}
    assert created == []
    assert _machines_alive() == alive_before
    assert TASK.machine.models == []
