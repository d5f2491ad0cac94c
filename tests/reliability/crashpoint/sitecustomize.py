"""A test-only crash point, loaded into a `plait` subprocess through PYTHONPATH.

With PLAIT_TEST_CRASH_AT=N, the process SIGKILLs itself right after its Nth append to a
run stream returns: that append is durable, nothing after it is. With
PLAIT_TEST_APPENDS_FILE, every run-stream append adds a line there: its event types (the
boundaries a representative run has). Nothing in plait reads these variables.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

_CRASH_AT = int(os.environ.get("PLAIT_TEST_CRASH_AT") or 0)
_COUNT_FILE = os.environ.get("PLAIT_TEST_APPENDS_FILE")

if _CRASH_AT or _COUNT_FILE:
    from plait.eventstore.sql_store import SqlEventStore

    _append = SqlEventStore.append
    _count = 0

    def append(self: SqlEventStore, stream_id: str, events: Any, *args: Any, **kwargs: Any) -> Any:
        global _count
        positions = _append(self, stream_id, events, *args, **kwargs)
        if stream_id.startswith("run-") and positions:
            _count += 1
            if _COUNT_FILE:
                with Path(_COUNT_FILE).open("a", encoding="utf-8") as file:
                    file.write(" ".join(e.type for e in events) + "\n")
            if _count == _CRASH_AT:
                os.kill(os.getpid(), signal.SIGKILL)
        return positions

    SqlEventStore.append = append  # type: ignore[method-assign]
