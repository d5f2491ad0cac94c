"""The recorded times of a run (ISO 8601 text, as the store writes them) as durations."""

from __future__ import annotations

from datetime import UTC, datetime


def parse_time(text: str | None) -> datetime | None:
    """A recorded time, or None for no time or text that is not one."""
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def seconds_between(start: str | None, end: str | None) -> float | None:
    """Seconds from `start` to `end`; None unless both are times."""
    began, ended = parse_time(start), parse_time(end)
    if began is None or ended is None:
        return None
    return max(0.0, (ended - began).total_seconds())


def duration_text(seconds: float | None) -> str:
    """12.3 s, 4 min 05 s, 2 h 03 min; '' for no duration."""
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {rest:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"
