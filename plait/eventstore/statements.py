"""The hot paths' SQL, written for the DBAPI cursor: SQLAlchemy's statement machinery costs
more than the SQLite work itself."""

from __future__ import annotations

# StoredEvent's fields, in its order: a driver row becomes a StoredEvent as it is.
COLUMNS = (
    "position, stream_id, stream_version, event_id, type, schema_version, "
    "data, metadata, recorded_at, hash"
)


class Statements:
    """The hot-path reads, in the driver's own parameter style (qmark or format)."""

    def __init__(self, mark: str) -> None:
        m = self.mark = mark
        self.select_all = (
            f"SELECT {COLUMNS} FROM plait_events WHERE position > {m} ORDER BY position LIMIT {m}"
        )
        self.select_stream = (
            f"SELECT {COLUMNS} FROM plait_events WHERE stream_id = {m} "
            f"AND stream_version >= {m} ORDER BY stream_version"
        )
        self.stream_version = (
            f"SELECT COALESCE(MAX(stream_version), 0) FROM plait_events WHERE stream_id = {m}"
        )
        self.last_position = "SELECT COALESCE(MAX(position), 0) FROM plait_events"
        self.last_event = "SELECT position, hash FROM plait_events ORDER BY position DESC LIMIT 1"

    def find_ids(self, count: int) -> str:
        marks = ", ".join([self.mark] * count)
        return (
            f"SELECT position, stream_id FROM plait_events WHERE event_id IN ({marks}) "
            "ORDER BY position"
        )
