"""Audit checks beyond the hash chain: every run's history must replay through its
lifecycles. A hand-edited history that still hashes (someone recomputed the chain) but
breaks a lifecycle is caught here."""

from __future__ import annotations

from dataclasses import dataclass

from plait.domain.errors import DomainError
from plait.domain.run import RunState
from plait.eventstore import EventStore
from plait.projections.codec import decode, run_id_of


@dataclass(frozen=True)
class ReplayReport:
    ok: bool
    runs: int
    first_bad_position: int | None = None
    problem: str | None = None


def verify_lifecycles(store: EventStore, page_size: int = 5000) -> ReplayReport:
    states: dict[str, RunState] = {}
    after = 0
    while page := store.read_all(after, page_size):
        for stored in page:
            run_id = run_id_of(stored)
            if run_id is None:
                continue
            state = states.setdefault(run_id, RunState())
            try:
                state.apply(decode(stored), stored.recorded_text)
            except (DomainError, TypeError, ValueError) as exc:
                return ReplayReport(
                    False,
                    len(states),
                    stored.position,
                    f"run {run_id}: {stored.type} breaks its lifecycle: {exc}",
                )
        after = page[-1].position
    return ReplayReport(True, len(states))
