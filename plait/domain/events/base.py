"""The base of every event, and the errors of loading one."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from plait.domain.errors import DomainError

Data = dict[str, Any]


Upcaster = Callable[[Data], Data]


MAX_TEST_IDS = 1000  # failing test ids kept in one event; the count says how many there were


class UnknownEventType(DomainError):
    """A stored event type that no event class is registered for."""

    def __init__(self, type_name: str) -> None:
        self.type_name = type_name
        super().__init__(f"unknown event type {type_name!r}")


class EventSchemaError(DomainError):
    """A stored payload that cannot be loaded: no upcaster, a newer schema, a missing field."""


@dataclass(frozen=True, kw_only=True)
class DomainEvent:
    """Base of every event. Subclasses get `TYPE` = their class name automatically."""

    TYPE: ClassVar[str] = "DomainEvent"
    SCHEMA_VERSION: ClassVar[int] = 1
    # TestsPassed & co. would otherwise be collected by pytest in any test that imports them.
    __test__: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.TYPE = cls.__name__

    def __post_init__(self) -> None:
        # Frozen events must not share mutable sequences with their caller; a bare str is
        # refused because it is a Sequence[str] and would silently become a tuple of letters.
        for spec in dataclasses.fields(self):
            value = getattr(self, spec.name)
            if isinstance(value, list):
                object.__setattr__(self, spec.name, tuple(value))
            elif isinstance(value, str) and "Sequence[" in str(spec.type):
                raise TypeError(f"{type(self).__name__}.{spec.name} needs a sequence, not a str")


@dataclass(frozen=True, kw_only=True)
class ProjectEvent(DomainEvent):
    """An event of a project stream."""

    project_id: str


@dataclass(frozen=True, kw_only=True)
class RunEvent(DomainEvent):
    """An event of a run stream."""

    run_id: str
