"""Stream names and the event codec now live in the event store (plait.eventstore.streams,
plait.eventstore.codec): the write path needs no projections. Re-exported for readers."""

from __future__ import annotations

from plait.eventstore.codec import Metadata, decode, encode
from plait.eventstore.streams import (
    PROJECT_PREFIX,
    RUN_PREFIX,
    project_id_of,
    project_stream,
    run_id_of,
    run_stream,
    stream_of,
)

__all__ = [
    "PROJECT_PREFIX",
    "RUN_PREFIX",
    "Metadata",
    "decode",
    "encode",
    "project_id_of",
    "project_stream",
    "run_id_of",
    "run_stream",
    "stream_of",
]
