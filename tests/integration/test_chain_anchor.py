"""The anchored chain: verify catches what the hash chain alone cannot, a history cut short,
wiped, or rewritten with every later hash recomputed. On SQLite and PostgreSQL alike."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import Connection, text

from plait.eventstore import ChainHead, NewEvent, SqlEventStore, hashing

PLAIT = str(Path(sys.executable).with_name("plait"))


def filled(url: str, count: int = 10) -> SqlEventStore:
    """A store with `count` events, closed once (which anchors its head), then reopened."""
    store = SqlEventStore(url)
    for n in range(count):
        store.append(f"stream-{n % 3}", [NewEvent(type="Happened", data={"n": n})], None)
    store.close()
    return SqlEventStore(url)


@contextmanager
def unguarded(store: SqlEventStore) -> Iterator[Connection]:
    """A connection that may change stored events: what someone with database access does."""
    with store.engine.connect() as conn:
        if store.dialect == "postgresql":
            conn.execute(text("ALTER TABLE plait_events DISABLE TRIGGER USER"))
        else:
            conn.execute(text("DROP TRIGGER IF EXISTS plait_events_no_update"))
            conn.execute(text("DROP TRIGGER IF EXISTS plait_events_no_delete"))
        yield conn
        conn.commit()


def rewrite_from(store: SqlEventStore, position: int) -> None:
    """Edit the event at `position` and recompute its hash and every later one."""
    events = store.read_all(0, 100_000)
    previous = events[position - 2].hash if position > 1 else hashing.GENESIS_HASH
    with unguarded(store) as conn:
        for stored in events[position - 1 :]:
            data = '{"n":"forged"}' if stored.position == position else stored.data_json
            digest = hashing.content_digest(
                stream_id=stored.stream_id,
                stream_version=stored.stream_version,
                event_id=stored.event_id,
                type=stored.type,
                schema_version=stored.schema_version,
                data_json=data,
                metadata_json=stored.metadata_json,
                recorded_at=stored.recorded_text,
            )
            previous = hashing.chain(previous, digest)
            conn.execute(
                text("UPDATE plait_events SET data = :d, hash = :h WHERE position = :p"),
                {"d": data, "h": previous, "p": stored.position},
            )


def test_an_intact_history_verifies_and_reports_its_head(store_url: str) -> None:
    store = filled(store_url)
    try:
        report = store.verify()
        assert report.ok, report.problem
        assert report.head == store.head() == ChainHead(10, store.read_all(9, 1)[0].hash)
        assert store.verify(expect_head=report.head).ok
    finally:
        store.close()


def test_removing_the_newest_events_is_caught_and_names_them(store_url: str) -> None:
    store = filled(store_url)
    try:
        with unguarded(store) as conn:
            conn.execute(text("DELETE FROM plait_events WHERE position > 7"))
        assert store.verify(page_size=3).head == ChainHead(7, store.read_all(6, 1)[0].hash)
        report = store.verify()
        assert not report.ok
        assert report.first_bad_position == 8
        assert report.problem is not None
        assert "events 8 to 10 were removed" in report.problem
    finally:
        store.close()


def test_a_wiped_history_is_caught(store_url: str) -> None:
    store = filled(store_url)
    try:
        with unguarded(store) as conn:
            conn.execute(text("DELETE FROM plait_events"))
        report = store.verify()
        assert not report.ok
        assert report.problem is not None
        assert "wiped" in report.problem
    finally:
        store.close()


def test_a_rewritten_chain_is_caught_though_every_hash_follows(store_url: str) -> None:
    store = filled(store_url)
    try:
        saved = store.verify().head
        assert saved is not None
        rewrite_from(store, 4)
        assert store.head_file is not None
        store.head_file.path.unlink()  # the forger removes the head file as well
        assert store.verify().ok  # the chain alone is fooled ...
        report = store.verify(expect_head=saved)  # ... the head the user kept is not
        assert not report.ok
        assert report.first_bad_position == 10
        assert report.problem is not None
        assert "rewritten" in report.problem
    finally:
        store.close()


def test_a_rewritten_chain_is_caught_by_the_head_file(store_url: str) -> None:
    store = filled(store_url)
    try:
        rewrite_from(store, 9)
        report = store.verify()
        assert not report.ok
        assert report.problem is not None
        assert "head file" in report.problem
    finally:
        store.close()


def test_the_head_file_never_moves_back(tmp_path: Path) -> None:
    store = filled(f"sqlite:///{tmp_path / 'plait.db'}", count=5)
    try:
        assert store.head_file is not None
        store.head_file.write(ChainHead(2, "0" * 64))
        assert store.head_file.read() == store.head()
    finally:
        store.close()


def verify_cli(url: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PLAIT, "verify", "--db", url, *extra],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        check=False,
        timeout=120,
    )


def test_verify_prints_the_head_to_keep_and_checks_it_later(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'plait.db'}"
    filled(url).close()
    first = verify_cli(url)
    assert first.returncode == 0, first.stderr
    head = first.stdout.split("head: ", 1)[1].split()[0]
    assert ChainHead.parse(head).position == 10
    assert verify_cli(url, "--expect-head", head).returncode == 0
    store = SqlEventStore(url)
    with unguarded(store) as conn:
        conn.execute(text("DELETE FROM plait_events WHERE position = 10"))
    store.close()
    Path(f"{tmp_path / 'plait.db'}.head").unlink()
    cut = verify_cli(url, "--expect-head", head)
    assert cut.returncode == 1
    assert "event 10 was removed" in cut.stderr


def test_verify_refuses_a_malformed_expected_head(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'plait.db'}"
    filled(url).close()
    result = verify_cli(url, "--expect-head", "not-a-head")
    assert result.returncode == 2
    assert "--expect-head" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("content", ["garbage\n", "12:" + "z" * 64])
def test_a_garbled_head_file_fails_verify_with_its_name(tmp_path: Path, content: str) -> None:
    url = f"sqlite:///{tmp_path / 'plait.db'}"
    filled(url).close()
    Path(f"{tmp_path / 'plait.db'}.head").write_text(content)
    store = SqlEventStore(url)
    try:
        report = store.verify()
        assert not report.ok
        assert report.problem is not None
        assert "plait.db.head" in report.problem
    finally:
        store.close(timeout=5)


async def test_every_landing_anchors_the_chain(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from plait.eventstore import base as sql_store
    from tests.integration.orchestration_helpers import open_harness, plan, task, write

    monkeypatch.setattr(sql_store, "ANCHOR_SECONDS", 3600.0)  # no periodic anchor meanwhile
    async with open_harness(tmp_path) as harness:
        done = await harness.run(plan(task("a", write("a.txt", "a"))))
        assert done.result.status == "landed", done.result.error
        landed = [e.position for e in done.events if e.type == "BatchLanded"]
        assert harness.store.head_file is not None
        anchored = harness.store.head_file.read()
        assert anchored is not None
        assert anchored.position >= landed[-1]


async def test_a_landing_keeps_the_chain_head_in_the_repository_and_verify_holds_the_store_to_it(
    tmp_path: Path,
) -> None:
    from plait.eventstore.anchor import head_ref_for
    from tests.gitrepo import git
    from tests.integration.orchestration_helpers import open_harness, plan, task, write

    async with open_harness(tmp_path) as harness:
        done = await harness.run(plan(task("a", write("a.txt", "a"))))
        assert done.result.status == "landed", done.result.error
        landed = [e.position for e in done.events if e.type == "BatchLanded"][-1]
        ref = head_ref_for(harness.store.url)
        kept = ChainHead.parse(git(harness.repo, "cat-file", "blob", ref))
        assert kept.position >= landed
        url = harness.store.url.render_as_string(hide_password=False)
    assert verify_cli(url).returncode == 0
    # Everything from the landing on is cut off, and the head file goes with it.
    store = SqlEventStore(url)
    with unguarded(store) as conn:
        conn.execute(text("DELETE FROM plait_events WHERE position >= :p"), {"p": landed})
    store.close()
    Path(f"{tmp_path / 'plait.db'}.head").unlink()
    cut = verify_cli(url)
    assert cut.returncode == 1
    assert f"the ref {ref} in " in cut.stderr
    assert "removed" in cut.stderr


def test_a_wiped_history_grown_past_the_anchor_does_not_move_the_anchor(store_url: str) -> None:
    store = filled(store_url)
    try:
        anchored = store.verify().head
        with unguarded(store) as conn:
            conn.execute(text("DELETE FROM plait_events"))
        for n in range(15):  # a forged history, longer than the one anchored
            store.append("forged", [NewEvent(type="Happened", data={"n": n})], None)
        store.record_head()
        assert store.head_file is not None
        assert store.head_file.read() == anchored  # the evidence stays
        report = store.verify()
        assert not report.ok
        assert report.first_bad_position == 10
        assert report.problem is not None
        assert "rewritten" in report.problem
    finally:
        store.close()
