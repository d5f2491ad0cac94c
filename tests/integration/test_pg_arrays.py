"""The append's hand-packed array parameters arrive in PostgreSQL exactly as given."""

from __future__ import annotations

import struct
from collections.abc import Iterator

import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from plait.eventstore import pg_arrays
from tests.conftest import PG_URL

pytestmark = pytest.mark.postgres

# PostgreSQL text cannot hold NUL, and UTF-8 cannot encode lone surrogates.
texts = st.text(st.characters(codec="utf-8", exclude_characters="\x00"))


@pytest.fixture(scope="module")
def connection(postgres_available: bool) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    if not postgres_available:
        pytest.skip("PostgreSQL is not reachable at " + PG_URL)
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        pg_arrays.register(conn.adapters)
        yield conn


@settings(max_examples=200, deadline=None)
@given(values=st.lists(texts, max_size=12))
def test_a_text_array_reads_back_element_for_element(
    connection: psycopg.Connection[tuple[object, ...]], values: list[str]
) -> None:
    row = connection.execute(
        "SELECT %b::text[], cardinality(%b::text[])",
        (pg_arrays.text_array(values), pg_arrays.text_array(values)),
    ).fetchone()
    assert row == (values, len(values))


@settings(max_examples=200, deadline=None)
@given(values=st.lists(st.integers(-(2**31), pg_arrays.INT4_MAX), max_size=12))
def test_an_integer_array_reads_back_element_for_element(
    connection: psycopg.Connection[tuple[object, ...]], values: list[int]
) -> None:
    row = connection.execute("SELECT %b::integer[]", (pg_arrays.int4_array(values),)).fetchone()
    assert row == (values,)


def test_an_integer_beyond_postgresqls_range_is_refused_before_it_is_sent() -> None:
    with pytest.raises(struct.error):
        pg_arrays.int4_array([pg_arrays.INT4_MAX + 1])
