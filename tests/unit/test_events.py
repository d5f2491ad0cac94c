"""Domain events: catalogue, JSON round-trip, forward compatibility and upcasting."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from plait.domain.errors import DomainError
from plait.domain.events import (
    EVENT_TYPES,
    PROJECT_EVENTS,
    RUN_EVENTS,
    UPCASTERS,
    BaselineTested,
    BatchStarted,
    CulpritFound,
    DomainEvent,
    EventSchemaError,
    RunCreated,
    RunEvent,
    TaskFailed,
    TaskSucceeded,
    TestsFailed,
    UnknownEventType,
    from_stored,
    to_data,
)

# One sample value per annotation used in the catalogue.
SAMPLES: dict[str, Any] = {
    "str": "text",
    "str | None": "maybe",
    "int": 7,
    "int | None": 3,
    "bool": True,
    "float": 1.25,
    "float | None": 0.0125,
    "dict[str, Any]": {"tasks": [{"id": "a", "depends_on": []}]},
    "Sequence[str]": ("one", "two"),
    "Sequence[Mapping[str, Any]]": ({"batch_id": 1, "task_ids": ["a"], "can_parallel": True},),
    'Literal["stdout", "stderr"]': "stderr",
}


def sample(cls: type[DomainEvent]) -> DomainEvent:
    """An instance of `cls` with every field set to a non-default value."""
    values = {
        spec.name: SAMPLES[str(spec.type).replace("'", '"')] for spec in dataclasses.fields(cls)
    }
    return cls(**values)


ALL_TYPES = sorted(EVENT_TYPES)


@pytest.mark.parametrize("type_name", ALL_TYPES)
def test_every_event_type_round_trips_through_its_stored_form(type_name: str) -> None:
    event = sample(EVENT_TYPES[type_name])
    stored = json.loads(json.dumps(to_data(event)))
    assert from_stored(event.TYPE, event.SCHEMA_VERSION, stored) == event


@pytest.mark.parametrize("type_name", ALL_TYPES)
def test_stored_data_is_plain_json_with_lists_for_sequences(type_name: str) -> None:
    data = to_data(sample(EVENT_TYPES[type_name]))
    assert json.loads(json.dumps(data)) == data
    assert not any(isinstance(value, tuple) for value in data.values())


@pytest.mark.parametrize("type_name", ALL_TYPES)
def test_type_is_the_class_name_and_schema_version_starts_at_one(type_name: str) -> None:
    cls = EVENT_TYPES[type_name]
    assert cls.TYPE == cls.__name__ == type_name
    assert cls.SCHEMA_VERSION == 1
    assert "TYPE" not in to_data(sample(cls))


def test_the_registry_holds_every_project_and_run_event() -> None:
    assert set(EVENT_TYPES.values()) == {*PROJECT_EVENTS, *RUN_EVENTS}
    assert len(EVENT_TYPES) == 41


@pytest.mark.parametrize("cls", RUN_EVENTS, ids=lambda cls: cls.TYPE)
def test_every_run_stream_event_carries_the_run_id(cls: type[RunEvent]) -> None:
    assert issubclass(cls, RunEvent)
    assert "run_id" in {spec.name for spec in dataclasses.fields(cls)}


def test_events_are_frozen() -> None:
    event = BatchStarted(run_id="r", batch_id=1, task_ids=["a"], can_parallel=False)
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.batch_id = 2  # type: ignore[misc]


def test_lists_given_to_an_event_are_kept_as_tuples_it_does_not_share() -> None:
    files = ["a.py"]
    event = TaskSucceeded(
        run_id="r",
        batch_id=1,
        task_id="t",
        worktree_id="w",
        attempt=1,
        commit="c",
        changed_files=files,
    )
    files.append("b.py")
    assert event.changed_files == ("a.py",)


def test_a_bare_string_is_refused_where_a_sequence_is_expected() -> None:
    with pytest.raises(TypeError, match="task_ids"):
        BatchStarted(run_id="r", batch_id=1, task_ids="abc", can_parallel=True)


def test_an_unknown_type_is_refused_with_a_domain_error() -> None:
    with pytest.raises(UnknownEventType, match="BatchExploded") as info:
        from_stored("BatchExploded", 1, {})
    assert isinstance(info.value, DomainError)
    assert info.value.type_name == "BatchExploded"


def test_keys_the_event_does_not_know_are_ignored_on_load() -> None:
    data = {**to_data(sample(TaskFailed)), "added_by_a_newer_writer": 1}
    assert from_stored("TaskFailed", 1, data) == sample(TaskFailed)


def test_missing_optional_fields_take_their_defaults() -> None:
    data = {
        "run_id": "r",
        "batch_id": 1,
        "task_id": "t",
        "worktree_id": "w",
        "attempt": 1,
        "exit_code": None,
        "error": "boom",
    }
    event = from_stored("TaskFailed", 1, data)
    assert isinstance(event, TaskFailed)
    assert (event.will_retry, event.duration) == (False, 0.0)


def test_a_missing_required_field_is_a_schema_error() -> None:
    with pytest.raises(EventSchemaError, match="TaskFailed"):
        from_stored("TaskFailed", 1, {"run_id": "r"})


def test_an_old_payload_is_upcast_before_it_is_loaded(monkeypatch: pytest.MonkeyPatch) -> None:
    def v0_to_v1(data: dict[str, Any]) -> dict[str, Any]:
        data["error"] = data.pop("message")
        return data

    # monkeypatch removes the fake upcaster again when the test ends.
    monkeypatch.setitem(UPCASTERS, ("TaskFailed", 0), v0_to_v1)
    v0 = {
        "run_id": "r",
        "batch_id": 1,
        "task_id": "t",
        "worktree_id": "w",
        "attempt": 2,
        "exit_code": 1,
        "message": "tests failed",
    }
    event = from_stored("TaskFailed", 0, v0)
    assert isinstance(event, TaskFailed)
    assert event.error == "tests failed"
    assert "message" in v0, "the stored payload itself is not modified"


def test_upcasters_run_in_version_order_up_to_the_current_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[int] = []

    def step(version: int) -> Any:
        def upcast(data: dict[str, Any]) -> dict[str, Any]:
            seen.append(version)
            return {**data, "reason": f"{data['reason']}>{version + 1}"}

        return upcast

    monkeypatch.setattr(RunCreated, "SCHEMA_VERSION", 3)
    for version in (0, 1, 2):
        monkeypatch.setitem(UPCASTERS, ("RunCreated", version), step(version))
    data = {**to_data(sample(RunCreated)), "reason": "v1"}
    from_stored("RunCreated", 1, data)
    assert seen == [1, 2]


def test_a_version_without_an_upcaster_is_a_schema_error() -> None:
    with pytest.raises(EventSchemaError, match="no upcaster for TaskFailed v0"):
        from_stored("TaskFailed", 0, to_data(sample(TaskFailed)))


def test_a_payload_from_a_newer_schema_is_refused() -> None:
    with pytest.raises(EventSchemaError, match="newer"):
        from_stored("TaskFailed", 2, to_data(sample(TaskFailed)))


def test_no_upcaster_is_left_registered_by_the_tests() -> None:
    assert UPCASTERS == {}


def test_verdicts_stored_before_their_detail_fields_load_with_defaults() -> None:
    common = {"run_id": "r", "batch_id": 1, "commit": "c", "command": "pytest"}
    failed = from_stored("TestsFailed", 1, {**common, "exit_code": 1, "duration": 2.0})
    assert isinstance(failed, TestsFailed)
    assert (failed.timed_out, failed.failed_tests, failed.failed_count) == (False, (), None)
    assert (failed.problem, failed.setup) == ("", "")
    baseline = from_stored(
        "BaselineTested", 1, {"run_id": "r", "command": "pytest", "passed": True, "exit_code": 0}
    )
    assert isinstance(baseline, BaselineTested)
    assert (baseline.problem, baseline.outside_reads, baseline.failed_count) == ("", (), None)
    culprit = from_stored("CulpritFound", 1, {"run_id": "r", "batch_id": 1, "task_id": "t"})
    assert isinstance(culprit, CulpritFound)
    assert culprit.broke_tests == ()
