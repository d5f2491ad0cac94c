"""Several processes project into one database (several servers, a CLI beside a server):
two of them creating a projection's first checkpoint at once must both go on."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import text

from plait.eventstore import SqlEventStore
from plait.projections.projector import _locked_checkpoint


@pytest.mark.postgres
def test_two_projectors_creating_the_first_checkpoint_at_once_both_go_on(
    pg_schema_url: str,
) -> None:
    store = SqlEventStore(pg_schema_url)
    outcome: dict[str, object] = {}

    def second() -> None:
        try:
            with store.write_connection() as conn, conn.begin():
                outcome["value"] = _locked_checkpoint(conn, "race")
        except Exception as exc:
            outcome["error"] = exc

    try:
        with store.write_connection() as first, first.begin():
            assert _locked_checkpoint(first, "race") == 0  # created, not yet committed
            racer = threading.Thread(target=second)
            racer.start()
            deadline = time.monotonic() + 30
            while not _waiting_on_a_lock(store) and racer.is_alive():
                assert time.monotonic() < deadline, "the second projector never reached the row"
                time.sleep(0.02)
        racer.join(30)
    finally:
        store.close()
    assert "error" not in outcome, outcome.get("error")
    assert outcome["value"] == 0


def _waiting_on_a_lock(store: SqlEventStore) -> bool:
    with store.connect() as conn:
        waiting = conn.execute(
            text(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                " AND query LIKE '%plait_projection_checkpoints%'"
                " AND query NOT LIKE '%pg_stat_activity%'"
            )
        ).scalar_one()
    return bool(waiting)
