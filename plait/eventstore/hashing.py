"""Canonical encoding and the hash chain.

Each event's hash is sha256(previous hash + content digest), where the content digest covers
every field of the envelope except the position. The PostgreSQL append function computes the
chain step in the database (so an append is one round trip); both sides use the same formula,
and `verify()` recomputes it in Python.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson

GENESIS_HASH = "0" * 64


# The hash covers the stored text itself, so the text need not be canonical: compact, in the
# mapping's own key order, is enough. orjson does it an order of magnitude faster than json;
# json takes what orjson refuses (integers beyond 64 bits, non-string keys).
_FALLBACK = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def canonical_json(value: Mapping[str, Any]) -> str:
    if not value:
        return "{}"
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return _FALLBACK.encode(value)


def timestamp_text(moment: datetime) -> str:
    """One spelling of a timestamp, whatever the driver hands back (naive values are UTC)."""
    if moment.tzinfo is UTC:  # an append's own clock reading: "+00:00" becomes "Z"
        return moment.isoformat(timespec="microseconds")[:-6] + "Z"
    if moment.tzinfo is not None and moment.utcoffset():
        moment = moment.astimezone(UTC)
    # isoformat is C code and a third of strftime's time; same text for years 1000-9999.
    return moment.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def content_digest(
    *,
    stream_id: str,
    stream_version: int,
    event_id: str,
    type: str,
    schema_version: int,
    data_json: str,
    metadata_json: str,
    recorded_at: datetime | str,
) -> str:
    """Digest of one event's fields; `recorded_at` may be given as timestamp_text already."""
    version, schema = str(stream_version), str(schema_version)
    stamp = recorded_at if isinstance(recorded_at, str) else timestamp_text(recorded_at)
    # A length prefix per field keeps ("ab", "c") and ("a", "bc") apart.
    encoded = (
        f"{len(stream_id)}:{stream_id}{len(version)}:{version}{len(event_id)}:{event_id}"
        f"{len(type)}:{type}{len(schema)}:{schema}{len(data_json)}:{data_json}"
        f"{len(metadata_json)}:{metadata_json}{len(stamp)}:{stamp}"
    )
    return hashlib.sha256(encoded.encode("utf-8")).hexdigest()


def chain(previous_hash: str, digest: str) -> str:
    return hashlib.sha256((previous_hash + digest).encode("ascii")).hexdigest()


# (event_id, type, schema_version, data_json, metadata_json): an event as an append encodes it.
EncodedEvent = tuple[str, str, int, str, str]


def chain_hashes(
    stream_id: str,
    first_version: int,
    events: Sequence[EncodedEvent],
    recorded_text: str,
    previous_hash: str,
) -> list[str]:
    """The chained hashes of events appended together: content_digest and chain, per event.

    The append path's version of those two functions, one call per append: the fields every
    event of the append shares are encoded once. tests/unit/test_hashing.py holds the two to
    the same answers.
    """
    sha256 = hashlib.sha256
    head = f"{len(stream_id)}:{stream_id}"
    tail = f"{len(recorded_text)}:{recorded_text}"
    hashes: list[str] = []
    keep = hashes.append
    previous = previous_hash
    version = first_version
    for event_id, type_, schema_version, data, meta in events:
        v, schema = str(version), str(schema_version)
        digest = sha256(
            f"{head}{len(v)}:{v}{len(event_id)}:{event_id}{len(type_)}:{type_}"
            f"{len(schema)}:{schema}{len(data)}:{data}{len(meta)}:{meta}{tail}".encode()
        ).hexdigest()
        previous = sha256(f"{previous}{digest}".encode()).hexdigest()
        keep(previous)
        version += 1
    return hashes
