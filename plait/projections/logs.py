"""A task attempt's output and a test run's output, read back for the CLI and the API.

The whole output is in the log file the driving process wrote (its path is in the attempt's
TaskStarted, or the test run's event); the events keep a bounded part of it (TaskOutput,
output_tail). A reader on the same machine gets the file; any other, or one whose file was
cleaned away, gets what the events kept.
"""

from __future__ import annotations

import codecs
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from plait.domain.events import TaskOutput
from plait.domain.run import AttemptState, TaskState
from plait.eventstore import StoredEvent

DEFAULT_LIMIT = 64 * 1024
MAX_LIMIT = 1024 * 1024


@dataclass(frozen=True)
class LogSlice:
    """`text` starts at `offset` and ends at `next_offset`, in the log's own units (bytes of
    the file, characters of the events): a reader passes `next_offset` back for more."""

    text: str
    offset: int
    next_offset: int
    size: int
    source: str  # "file" | "events"

    @property
    def at_end(self) -> bool:
        return self.next_offset >= self.size


def attempt_logs(task: TaskState, attempt: int | None = None) -> list[AttemptState]:
    """The task's attempts that have output (all, or the one asked for)."""
    return [
        a
        for a in task.attempts
        if (attempt is None or a.attempt == attempt) and a.started_at is not None
    ]


def task_output(events: Sequence[StoredEvent], task: TaskState, attempt: AttemptState) -> str:
    """An attempt's whole output."""
    return read_attempt(lambda: events, task, attempt, 0, None).text


def read_attempt(
    events: Callable[[], Sequence[StoredEvent]],
    task: TaskState,
    attempt: AttemptState,
    offset: int,
    limit: int | None = DEFAULT_LIMIT,
    *,
    source: str | None = None,
) -> LogSlice:
    """From the log file, else (or with `source="events"`) from the events, which hold an
    agent's output as a person reads it rather than its raw JSON. `events` is called (to
    read the run's stream) only when it is needed."""
    if source != "events" and attempt.log_path:
        file = _read_file(Path(attempt.log_path), offset, limit)
        if file is not None:
            return file
    text = "".join(
        str(stored.data.get("text") or "")
        for stored in events()
        if stored.type == TaskOutput.TYPE
        and stored.data.get("task_id") == task.task_id
        and stored.data.get("worktree_id") == attempt.worktree_id
    )
    return _slice_text(text, offset, limit)


def read_text_log(path: str, fallback: str, offset: int, limit: int | None) -> LogSlice:
    """A test run's output: its log file, else the tail its event kept."""
    file = _read_file(Path(path), offset, limit) if path else None
    return file if file is not None else _slice_text(fallback, offset, limit)


def _slice_text(text: str, offset: int, limit: int | None) -> LogSlice:
    end = len(text) if limit is None else min(len(text), offset + limit)
    start = min(offset, len(text))
    return LogSlice(text[start:end], start, max(start, end), len(text), "events")


def _read_file(path: Path, offset: int, limit: int | None) -> LogSlice | None:
    try:
        with path.open("rb") as log:
            size = log.seek(0, 2)
            start = min(offset, size)
            log.seek(start)
            chunk = log.read(size - start if limit is None else limit)
    except OSError:
        return None
    # A slice may end inside a character: leave its first bytes for the next read.
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    text = decoder.decode(chunk, final=start + len(chunk) >= size)
    pending = len(decoder.getstate()[0])
    return LogSlice(text, start, start + len(chunk) - pending, size, "file")
