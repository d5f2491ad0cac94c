"""The records that go into and come out of the store."""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

import orjson

from plait.eventstore import hashing
from plait.eventstore.errors import DuplicateEventError
from plait.eventstore.hashing import timestamp_text

JSONDict = dict[str, Any]
MAX_STREAM_ID_LENGTH = 200
INT4_MAX = 2**31 - 1  # PostgreSQL's integer, the schema version's column


# Clears the version and variant bits of a 128-bit value; _UUID7_BITS then sets them.
_VERSION_VARIANT_MASK = 0xFFFF_FFFF_FFFF_0FFF_3FFF_FFFF_FFFF_FFFF
_UUID7_BITS = 0x7 << 76 | 0x2 << 62  # version 7, RFC 9562 variant
_random_bits = random.getrandbits


def time_ordered_uuid() -> uuid.UUID:
    """A UUID version 7: a millisecond timestamp, then random bits (RFC 9562).

    Ids that grow over time land at the end of the event-id index instead of on a random
    page, so an append dirties one index page rather than one per event.
    """
    millis = time.time_ns() // 1_000_000
    # The random bits need to be unique, not secret: the Mersenne Twister gives them in a
    # tenth of os.urandom's time (a system call), and Python reseeds it in a forked child.
    value = (millis & 0xFFFF_FFFF_FFFF) << 80 | _random_bits(80)
    return uuid.UUID(int=value & _VERSION_VARIANT_MASK | _UUID7_BITS)


@dataclass(frozen=True, slots=True)
class Fence:
    """Proof of driving a run: its lease and the epoch the acquisition was given.

    An append that carries a fence is stored only if, in the same transaction, the run's
    lease still has this epoch and has not expired by the database's clock (FencedOff).
    """

    run_id: str
    epoch: int


@dataclass(frozen=True, kw_only=True, slots=True)
class NewEvent:
    """An event to append. `event_id` makes a retried append idempotent: keep it across retries."""

    type: str
    data: Mapping[str, Any]
    schema_version: int = 1
    event_id: uuid.UUID = field(default_factory=time_ordered_uuid)
    metadata: Mapping[str, Any] = field(default_factory=dict)


class StoredEvent(NamedTuple):
    """An event as stored, with its full envelope; fields in the table's column order.

    A named tuple, because reading history builds millions of these: the store makes each
    one straight from the driver's row, with no Python code per row. So fields hold what the
    driver returns, and decoding happens on access: `data` and `metadata` decode the stored
    JSON text (it is what the hash covers), `recorded_at` parses `recorded` where the
    database keeps text (SQLite). Readers that only route or count events pay for neither.
    """

    position: int
    stream_id: str
    stream_version: int
    event_id: str
    type: str
    schema_version: int
    data_json: str
    metadata_json: str
    recorded: datetime | str
    hash: str

    @property
    def recorded_at(self) -> datetime:
        recorded = self.recorded
        return recorded if isinstance(recorded, datetime) else datetime.fromisoformat(recorded)

    @property
    def recorded_text(self) -> str:
        """recorded_at as hashing.timestamp_text spells it (what the hash chain covers)."""
        recorded = self.recorded
        if isinstance(recorded, str) and len(recorded) == 27 and recorded[-1] == "Z":
            return recorded  # stored in that spelling already
        return timestamp_text(self.recorded_at)

    @property
    def data(self) -> JSONDict:
        decoded: JSONDict = orjson.loads(self.data_json)
        return decoded

    @property
    def metadata(self) -> JSONDict:
        decoded: JSONDict = orjson.loads(self.metadata_json)
        return decoded


@dataclass(frozen=True)
class IntegrityReport:
    """What `verify()` found. `ok` is False from the first bad event on."""

    ok: bool
    checked: int
    first_bad_position: int | None = None
    problem: str | None = None
    # The chain's head as verified (None for an empty history): what to keep and pass to
    # `plait verify --expect-head` later. An anchor.ChainHead.
    head: Any = None


def check_stream_id(stream_id: str) -> None:
    if not stream_id or len(stream_id) > MAX_STREAM_ID_LENGTH or "\x00" in stream_id:
        raise ValueError(
            f"stream id must be 1-{MAX_STREAM_ID_LENGTH} characters without NUL: {stream_id!r}"
        )


def encode_event(event: NewEvent) -> hashing.EncodedEvent:
    if not event.type or len(event.type) > 100 or "\x00" in event.type:
        raise ValueError(f"event type must be 1-100 characters, without NUL: {event.type!r}")
    if not 1 <= event.schema_version <= INT4_MAX:
        raise ValueError(f"schema_version must be 1-{INT4_MAX}: {event.schema_version}")
    return (
        str(event.event_id),
        event.type,
        event.schema_version,
        hashing.canonical_json(event.data),
        hashing.canonical_json(event.metadata),
    )


def idempotent_positions(stream_id: str, existing: Sequence[Any], wanted: int) -> list[int]:
    if len(existing) == wanted and all(row[1] == stream_id for row in existing):
        return [int(row[0]) for row in existing]
    raise DuplicateEventError(f"stream {stream_id!r}: some of these event ids are already stored")
