"""The append's array parameters, packed straight into PostgreSQL's binary array format.

psycopg's generic list dumper works element by element in Python (a type lookup and a
dimension check per element): for the five arrays of a ten-event append that was a third of
the append's client CPU. These arrays are always flat, non-null lists of str or of int4, so
they are packed in one pass and handed to psycopg as ready-made binary parameters.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any

from psycopg.adapt import AdaptersMap, Dumper
from psycopg.pq import Format

TEXT_OID, TEXT_ARRAY_OID = 25, 1009
INT4_OID, INT4_ARRAY_OID = 23, 1007
INT4_MAX = 2**31 - 1

# One dimension: ndim, has-nulls flag, element type, length, lower bound (array_send's layout).
_HEADER = struct.Struct("!iiIii")
_EMPTY = struct.Struct("!iiI")


class TextArray(bytes):
    """A text[] parameter, already in the binary wire format."""


class Int4Array(bytes):
    """An integer[] parameter, already in the binary wire format."""


def text_array(values: Sequence[str]) -> TextArray:
    if not values:
        return TextArray(_EMPTY.pack(0, 0, TEXT_OID))
    parts = [_HEADER.pack(1, 0, TEXT_OID, len(values), 1)]
    for value in values:
        encoded = value.encode()
        parts.append(len(encoded).to_bytes(4, "big"))
        parts.append(encoded)
    return TextArray(b"".join(parts))


def int4_array(values: Sequence[int]) -> Int4Array:
    """Each value must fit a PostgreSQL integer (struct.error otherwise)."""
    if not values:
        return Int4Array(_EMPTY.pack(0, 0, INT4_OID))
    # Each element is its length (4) and then its value.
    body = struct.pack(f"!{2 * len(values)}i", *[n for value in values for n in (4, value)])
    return Int4Array(_HEADER.pack(1, 0, INT4_OID, len(values), 1) + body)


class _PackedDumper(Dumper):
    format = Format.BINARY

    def dump(self, obj: Any) -> bytes:
        packed: bytes = obj  # packed by text_array or int4_array
        return packed


class _TextArrayDumper(_PackedDumper):
    oid = TEXT_ARRAY_OID


class _Int4ArrayDumper(_PackedDumper):
    oid = INT4_ARRAY_OID


def register(adapters: AdaptersMap) -> None:
    """Teach one connection (or cursor) to send TextArray and Int4Array as they are."""
    adapters.register_dumper(TextArray, _TextArrayDumper)
    adapters.register_dumper(Int4Array, _Int4ArrayDumper)
