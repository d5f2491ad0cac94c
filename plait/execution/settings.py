"""Where plait keeps its files, and the knobs a deployment may turn."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import platformdirs

from plait.eventstore.leases import LeaseTimings


def _default_log_root() -> Path:
    return Path(platformdirs.user_data_dir("plait", appauthor=False)) / "logs"


@dataclass(frozen=True)
class Settings:
    # Task worktrees; None: inside each repository's git dir (<common dir>/plait-worktrees).
    worktree_root: Path | None = None
    # Full task and test output, whatever the events keep.
    log_root: Path = field(default_factory=_default_log_root)
    # SIGTERM -> SIGKILL grace when a task is stopped or times out.
    stop_grace: float = 5.0
    # Output events per task attempt are capped; the full log stays on disk.
    max_output_event_bytes: int = 256 * 1024
    output_flush_seconds: float = 0.25
    output_chunk_bytes: int = 8192
    # Tests on a merged commit: default timeout when the plan gives none.
    test_timeout: float = 1800.0
    # How long a run pauses, retrying, while the database is unreachable; then it ends,
    # resumable (see RunRecorder.record). With the renewal interval, shorter than the lease
    # TTL (checked below): a driver cut off gives up before its lease can expire.
    outage_tolerance: float = 15.0
    # The run lease's TTL, renewal interval and takeover interval (docs/reliability.md).
    leases: LeaseTimings = field(default_factory=LeaseTimings)
    # Task repositories from a per-repository pool (the default; `--fresh-worktrees` turns it
    # off): a slot is a task repository of its own like a fresh one (worktrees/pool.py), so
    # both are equally contained, but preparing a recycled slot costs a checkout of the
    # files that differ, not of every file. Idle slots stay (detached) until the service
    # closes, or, with keep_pool, after it too: the next process on the repository takes
    # them back (`plait run` keeps them, so each run reuses the previous one's).
    reuse_worktrees: bool = True
    keep_pool: bool = False
    # Keep the read models following the store while runs go (a server, whose readers want
    # them current). Without it they catch up when read and once more at close: a `plait
    # run` process reads its run from memory, and projecting each event as it is stored
    # would cost it a second transaction per event.
    follow_projections: bool = True
    pool_max_idle: int = 4  # at least; a run raises it to its largest batch's size
    actor: str = "plait"

    def __post_init__(self) -> None:
        self.leases.check_outage_tolerance(self.outage_tolerance)
