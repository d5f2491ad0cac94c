"""The one registry of the run fold: each run-stream event type, the handler that folds it.

A handler is registered by the type it folds (`@folds(TaskStarted)`), in the module of its
part of the run (fold_run, fold_batch, fold_task). Adding an event type touches its class
in plait.domain.events, its handler here in the domain, the code that emits it, and its
tests; `RunState.apply` finds the handler by the event's class.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from plait.domain.events import RunEvent

Handler = Callable[[Any, Any, str | None], None]
H = TypeVar("H", bound=Handler)

_FOLDS: dict[type[RunEvent], Handler] = {}


def folds(*kinds: type[RunEvent]) -> Callable[[H], H]:
    """Register the decorated function as the fold of each of `kinds`."""

    def register(handler: H) -> H:
        for kind in kinds:
            if kind in _FOLDS:
                raise RuntimeError(f"{kind.TYPE} has a fold already: {_FOLDS[kind].__name__}")
            _FOLDS[kind] = handler
        return handler

    return register


def fold_for(kind: type[RunEvent]) -> Handler:
    handler = _FOLDS.get(kind)
    if handler is None:
        raise TypeError(f"no fold for run-stream event {kind.TYPE}")
    return handler


def registered() -> Mapping[type[RunEvent], Handler]:
    """Every registered fold (for the test that each run-stream event has one)."""
    return dict(_FOLDS)
