"""A trial copy of a run's state: events are checked on it before they are stored.

The recorder folds the events it is about to append onto a trial (execution/run/recorder.py):
an event the lifecycles refuse is refused there, before anything is written, and the real
state changes only once the store has the events. A deep copy of the whole state would make
every append cost what the run's size costs (about 1 ms an append at 30 tasks, 10 ms at
300). A trial costs what the events touch instead (about 20 us at either size):

- the run's own fields are copied (a shallow copy, and its lists copied);
- `batches` and `tasks` are copy-on-read maps over the real state's entries: the first
  time the fold reads an entry (`[]`, `get`, `setdefault`, `values`, `items`), it gets a
  copy of its own, lists and attempts included, that it may change; an entry the fold adds
  is the trial's alone. What the fold never reads is shared with the real state and never
  written.

So a trial is as good as a deep copy for the fold: nothing it does reaches the real state
(tests/unit/test_run_trial.py folds random histories both ways and compares).
"""

from __future__ import annotations

import copy
import dataclasses
from _collections_abc import dict_items, dict_values
from enum import Enum
from typing import Any, TypeVar

from plait.domain.run.entities import AttemptState, BatchState, TaskState, TestRunState
from plait.domain.run.state import RunState

__all__ = ["trial"]

K = TypeVar("K")
V = TypeVar("V")

_FIELDS: dict[type, tuple[str, ...]] = {
    kind: tuple(spec.name for spec in dataclasses.fields(kind))
    for kind in (TaskState, BatchState, AttemptState, TestRunState)
}
_IMMUTABLE = (str, int, float, bool, type(None), Enum)


def trial(state: RunState) -> RunState:
    """A copy of `state` that folding events onto leaves `state` as it was."""
    copied = copy.copy(state)
    for spec in dataclasses.fields(RunState):
        value = getattr(state, spec.name)
        if spec.name in ("batches", "tasks"):
            setattr(copied, spec.name, _CopyOnRead(value))
        elif not isinstance(value, _IMMUTABLE):
            setattr(copied, spec.name, _copied(value))
    return copied


def _copied(value: Any) -> Any:
    """A deep copy of one entry of the state (its dataclasses, lists and dicts)."""
    if isinstance(value, _IMMUTABLE):
        return value
    if type(value) is list:
        return [_copied(item) for item in value]
    if type(value) is dict:
        return {key: _copied(item) for key, item in value.items()}
    if type(value) is tuple:
        return tuple(_copied(item) for item in value)
    names = _FIELDS.get(type(value))
    if names is None:
        return copy.deepcopy(value)
    made = object.__new__(type(value))
    for name in names:
        setattr(made, name, _copied(getattr(value, name)))
    return made


class _CopyOnRead(dict[K, V]):
    """The real state's entries (shared, pointers only), each copied the first time it is
    read through this map; what is set on it is its own."""

    __slots__ = ("_own",)

    def __init__(self, real: dict[K, V]) -> None:
        super().__init__(real)
        self._own: set[K] = set()

    def _mine(self, key: K) -> V:
        value = dict.__getitem__(self, key)
        if key not in self._own:
            value = _copied(value)
            dict.__setitem__(self, key, value)
            self._own.add(key)
        return value

    def __getitem__(self, key: K) -> V:
        return self._mine(key)

    def __setitem__(self, key: K, value: V) -> None:
        dict.__setitem__(self, key, value)
        self._own.add(key)

    def get(self, key: K, default: Any = None) -> Any:
        return self._mine(key) if key in self else default

    def setdefault(self, key: K, default: V) -> V:
        if key in self:
            return self._mine(key)
        self[key] = default
        return default

    def pop(self, key: K, *default: Any) -> Any:
        if key in self:
            value = self._mine(key)
            dict.__delitem__(self, key)
            return value
        return dict.pop(self, key, *default)

    def values(self) -> dict_values[K, V]:
        self._all_mine()
        return super().values()

    def items(self) -> dict_items[K, V]:
        self._all_mine()
        return super().items()

    def update(self, *others: Any, **more: Any) -> None:
        for key, value in dict(*others, **more).items():
            self[key] = value

    def popitem(self) -> tuple[K, V]:
        raise TypeError("a trial's entries are not popped")

    def copy(self) -> dict[K, V]:
        self._all_mine()
        return dict(self)

    def _all_mine(self) -> None:
        for key in list(self):
            self._mine(key)
