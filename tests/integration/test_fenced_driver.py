"""A driver whose lease was taken over cannot record anything more: its appends carry its
fence, and the store refuses them. No second RunEnded, and the project keeps its active run,
so no second run can start on the repository."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from plait.eventstore.leases import LeaseStore
from plait.execution.service import RunAlreadyActive
from plait.projections.codec import project_stream
from tests.integration.orchestration_helpers import open_harness, plan, task, wait_until, write


async def test_a_driver_whose_lease_was_expired_by_hand_and_taken_records_nothing_more(
    tmp_path: Path,
) -> None:
    async with open_harness(tmp_path) as harness:
        gate = harness.shared / "go"
        command = f"{wait_until(f'test -f {shlex.quote(str(gate))}')} && {write('a.txt', 'a')}"
        run_id = await harness.start(plan(task("a", command)))
        await harness.wait_for_event(run_id, lambda e: e.type == "TaskStarted")
        # A partition or a long pause, simulated: the lease expires, and another server
        # takes the run over (a new epoch).
        harness.service.supervisor.leases.expire(run_id)
        assert LeaseStore(harness.store).acquire(run_id) is not None
        stored_before = harness.store.last_position()

        gate.write_text("")  # the deposed driver's task finishes and it tries to record it
        result = await harness.service.wait_run(run_id)

        # Its result is what it stored: the run is still running, another process's now.
        assert result.status == "running"
        assert result.error is not None
        assert "another process drives" in result.error
        assert harness.store.last_position() == stored_before  # nothing at all was stored
        project = await harness.project()
        types = [e.type for e in harness.store.read_stream(project_stream(project))]
        assert types[-1] == "RunStarted"  # no RunEnded(failed) from the deposed driver
        with pytest.raises(RunAlreadyActive):
            await harness.service.start_run(project)
