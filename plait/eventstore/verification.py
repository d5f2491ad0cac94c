"""`verify`: the hash chain, then the chain against its anchors.

What is detected (each names the first position that is wrong):
- an event changed in place, or moved, or removed from the middle: its hash, its position
  or its stream version no longer follows (the chain alone);
- the newest events removed, down to an empty table: the anchor (the head file, or the head
  given with --expect-head) records a position past the end of the history;
- a history rewritten with every later hash recomputed: the event at the anchored position
  no longer has the anchored hash.
What is not: changes after the newest anchor (the head file is written at most every
anchor.ANCHOR_SECONDS, at landings and when a store closes, so the last second or so of
appends is covered only by the chain); and anyone who rewrites the head file along with the
history, unless the user kept a head elsewhere and passes it with --expect-head.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from plait.eventstore import hashing
from plait.eventstore.anchor import ChainHead, HeadFile
from plait.eventstore.records import IntegrityReport, StoredEvent


def verify_chain(
    read_all: Callable[[int, int], list[StoredEvent]],
    head_file: HeadFile | None,
    page_size: int = 5000,
    expect_head: ChainHead | None = None,
    anchors: Sequence[tuple[str, ChainHead]] = (),
) -> IntegrityReport:
    """Walk the history `read_all` pages through, and check it against `head_file`,
    `expect_head` and `anchors` (each named by where it was kept)."""
    anchors = list(anchors)
    if expect_head is not None:
        anchors.insert(0, ("the expected head", expect_head))
    if head_file is not None:
        try:
            recorded = head_file.read()
        except ValueError as exc:
            return IntegrityReport(ok=False, checked=0, problem=str(exc))
        if recorded is not None:
            anchors.append((f"the head file {head_file.path}", recorded))
    wanted = {head.position for _, head in anchors}
    found: dict[int, str] = {}
    checked = 0
    expected_position = 1
    previous = hashing.GENESIS_HASH
    versions: dict[str, int] = {}
    after = 0
    while page := read_all(after, page_size):
        for event in page:
            problem = check_event(event, expected_position, previous, versions)
            if problem is not None:
                return IntegrityReport(False, checked, event.position, problem)
            if event.position in wanted:
                found[event.position] = event.hash
            checked += 1
            expected_position = event.position + 1
            previous = event.hash
            versions[event.stream_id] = event.stream_version
        after = page[-1].position
    end = expected_position - 1
    head = ChainHead(end, previous) if end else None
    for source, anchor in anchors:
        problem = _against(anchor, source, end, found.get(anchor.position))
        if problem is not None:
            first_bad = end + 1 if anchor.position > end else anchor.position
            return IntegrityReport(False, checked, first_bad, problem, head)
    return IntegrityReport(True, checked, head=head)


def _against(anchor: ChainHead, source: str, end: int, stored_hash: str | None) -> str | None:
    if anchor.position > end:
        if end == 0:
            return (
                f"the history is empty, but {source} records {anchor.position} events "
                f"(head {anchor}): it was wiped"
            )
        removed = (
            f"event {anchor.position} was"
            if anchor.position == end + 1
            else f"events {end + 1} to {anchor.position} were"
        )
        return (
            f"{removed} removed: {source} records the chain's head at position "
            f"{anchor.position}, but the history ends at {end}"
        )
    if stored_hash != anchor.hash:
        return (
            f"the event at position {anchor.position} is not the one {source} records "
            f"(hash {anchor.hash[:16]}..., stored {str(stored_hash)[:16]}...): the history "
            "was rewritten at or before it"
        )
    return None


def check_event(
    event: StoredEvent, expected_position: int, previous: str, versions: dict[str, int]
) -> str | None:
    if event.position != expected_position:
        return f"position {expected_position} is missing (next stored is {event.position})"
    expected_version = versions.get(event.stream_id, 0) + 1
    if event.stream_version != expected_version:
        return (
            f"stream {event.stream_id!r} has version {event.stream_version} "
            f"where {expected_version} was expected"
        )
    digest = hashing.content_digest(
        stream_id=event.stream_id,
        stream_version=event.stream_version,
        event_id=event.event_id,
        type=event.type,
        schema_version=event.schema_version,
        data_json=event.data_json,
        metadata_json=event.metadata_json,
        recorded_at=event.recorded_text,
    )
    if hashing.chain(previous, digest) != event.hash:
        return f"event {event.event_id} ({event.type}) does not match its hash: it was altered"
    return None
