"""Event ids are RFC 9562 version 7 UUIDs: time-ordered, random after the millisecond."""

from __future__ import annotations

import time
import uuid

from plait.eventstore import NewEvent
from plait.eventstore.records import time_ordered_uuid


def test_an_event_id_is_a_version_7_uuid_stamped_with_the_current_millisecond() -> None:
    before = time.time_ns() // 1_000_000
    made = time_ordered_uuid()
    after = time.time_ns() // 1_000_000
    assert made.version == 7
    assert made.variant == uuid.RFC_4122
    assert before <= made.int >> 80 <= after


def test_ids_from_later_milliseconds_sort_later_and_no_two_ids_are_equal() -> None:
    ids = [time_ordered_uuid() for _ in range(5000)]
    assert len(set(ids)) == len(ids)
    stamps = [made.int >> 80 for made in ids]
    assert stamps == sorted(stamps)


def test_each_new_event_gets_its_own_id_unless_one_is_given() -> None:
    given = uuid.uuid4()
    assert NewEvent(type="A", data={}).event_id != NewEvent(type="A", data={}).event_id
    assert NewEvent(type="A", data={}, event_id=given).event_id == given


def test_forked_processes_never_make_the_same_ids() -> None:
    import multiprocessing

    time_ordered_uuid()  # the parent's generator is in use before the fork
    with multiprocessing.get_context("fork").Pool(2) as pool:
        batches = pool.map(_ids, [200, 200])
    made = [*batches[0], *batches[1], *_ids(200)]
    assert len(set(made)) == len(made)


def _ids(count: int) -> list[uuid.UUID]:
    return [time_ordered_uuid() for _ in range(count)]
