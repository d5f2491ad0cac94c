"""What a driver does besides driving: keep its lease, and hear what other processes ask.

- The lease (`keep_lease`): renewed every `renew_every` seconds. A renewal the store refuses
  means another process took the run over: the driver is deposed, stops its tasks and writes
  nothing more (its appends would be fenced off anyway). A renewal that cannot reach the
  database is retried; if none succeeds for `give_up_after` seconds, the driver stops its
  tasks the same way, early enough that they are gone before the lease can expire by the
  database's clock and another process may take over.
- Commands (`follow_commands`): a process that does not drive a run records a request on the
  run's stream (StopRequested). The driver follows the store's live feed and, when its run
  stream grows by events it did not write, catches up (RunRecorder.catch_up): a stop
  request sets the run's stop, exactly as a local stop does.
"""

from __future__ import annotations

import asyncio
import logging
import time

from plait.domain.errors import DomainError
from plait.domain.events import RunEvent, StopRequested
from plait.domain.statuses import RunStatus
from plait.eventstore import EventStore, StoreError
from plait.eventstore.leases import LeaseStore, LeaseTimings
from plait.execution.run.context import RunContext
from plait.execution.run.recorder import RunRecorder

log = logging.getLogger(__name__)


def give_up_after(timings: LeaseTimings, stop_grace: float) -> float:
    """Seconds without a successful renewal after which a driver stops its tasks: they are
    stopped (SIGTERM, SIGKILL after `stop_grace`) before the lease it last renewed expires."""
    return max(timings.ttl - stop_grace - timings.renew_every / 2, timings.renew_every / 2)


def on_command(ctx: RunContext, event: RunEvent) -> None:
    if isinstance(event, StopRequested):
        log.warning("run %s: stop requested by another process: %s", ctx.run_id, event.reason)
        ctx.stop.set()


def depose(ctx: RunContext, why: str) -> None:
    """This process no longer drives the run: stop its tasks, write nothing more."""
    if not ctx.recorder.deposed:
        log.error("run %s: %s; stopping its tasks without recording anything", ctx.run_id, why)
    ctx.recorder.deposed = True
    ctx.stop.set()


async def keep_lease(leases: LeaseStore, ctx: RunContext, stop_grace: float) -> None:
    timings = leases.timings
    limit = give_up_after(timings, stop_grace)
    last_renewed = time.monotonic()
    while True:
        wait = min(timings.renew_every, max(last_renewed + limit - time.monotonic(), 0.0))
        await asyncio.sleep(wait)
        attempt = time.monotonic()
        try:
            renewed = await asyncio.to_thread(leases.renew, ctx.run_id)
        except StoreError as exc:
            if time.monotonic() - last_renewed >= limit:
                depose(ctx, f"could not renew its lease for {limit:.0f} s ({exc})")
                return
            log.warning("run %s: could not renew its lease: %s", ctx.run_id, exc)
            await asyncio.sleep(min(1.0, timings.renew_every))
            continue
        if not renewed:
            depose(ctx, "lost its lease to another process")
            return
        last_renewed = attempt


async def follow_commands(store: EventStore, ctx: RunContext, after: int) -> None:
    """Catch up with what other processes append to the run's stream, from `after` on."""
    recorder = ctx.recorder
    delay = 0.1
    while not recorder.deposed:
        try:
            async for stored in store.subscribe(after):
                after = stored.position
                if stored.stream_id == recorder.stream and stored.stream_version > recorder.version:
                    await recorder.catch_up()
                delay = 0.1
            return
        except StoreError as exc:
            if recorder.deposed:
                depose(ctx, str(exc))
                return
            log.warning("run %s: its live feed paused: %s", ctx.run_id, exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)


async def request_stop(recorder: RunRecorder, reason: str) -> None:
    """Record StopRequested with a recorder that does not drive the run: it catches up with
    the driver's appends first (RunRecorder.record), so the request lands on the stream as
    it is. A run already stopping, or ended meanwhile, needs no request."""
    asking = (RunStatus.RUNNING, RunStatus.PENDING)
    if recorder.state.status not in asking:
        return
    try:
        await recorder.record(StopRequested(run_id=recorder.run_id, reason=reason))
    except DomainError:
        if recorder.state.status in asking:
            raise  # refused for another reason than a stop or an end meanwhile
