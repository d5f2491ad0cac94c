"""The hash chain's two spellings (per event, and per append) agree on every input."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from plait.eventstore import hashing

texts = st.text(min_size=0, max_size=40)
events = st.tuples(texts, texts, st.integers(1, 1000), texts, texts)


@given(
    stream_id=texts,
    first_version=st.integers(1, 10**9),
    batch=st.lists(events, min_size=1, max_size=5),
    recorded_text=texts,
    previous=st.sampled_from([hashing.GENESIS_HASH, "ab" * 32]),
)
def test_an_appends_chain_equals_the_per_event_digest_and_chain(
    stream_id: str,
    first_version: int,
    batch: list[hashing.EncodedEvent],
    recorded_text: str,
    previous: str,
) -> None:
    expected = []
    chained = previous
    for version, (event_id, type_, schema_version, data, meta) in enumerate(
        batch, start=first_version
    ):
        digest = hashing.content_digest(
            stream_id=stream_id,
            stream_version=version,
            event_id=event_id,
            type=type_,
            schema_version=schema_version,
            data_json=data,
            metadata_json=meta,
            recorded_at=recorded_text,
        )
        chained = hashing.chain(chained, digest)
        expected.append(chained)
    appended = hashing.chain_hashes(stream_id, first_version, batch, recorded_text, previous)
    assert appended == expected


def test_a_field_boundary_moved_between_fields_changes_the_hash() -> None:
    one = hashing.chain_hashes("ab", 1, [("c", "T", 1, "{}", "{}")], "t", hashing.GENESIS_HASH)
    two = hashing.chain_hashes("a", 1, [("bc", "T", 1, "{}", "{}")], "t", hashing.GENESIS_HASH)
    assert one != two
