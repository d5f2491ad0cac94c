"""Lease owners are told apart by boot id, PID namespace, PID and start time, not hostname
and PID: two containers with one hostname never take each other's live lease, while a
holder that provably died on this kernel and in this namespace is taken over at once."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from plait.eventstore import SqlEventStore
from plait.eventstore.leases import LeaseStore
from plait.eventstore.owner import Owner, this_process

HOLD = """
import sys
from plait.eventstore import SqlEventStore
from plait.eventstore.leases import LeaseStore
store = SqlEventStore(sys.argv[1])
leases = LeaseStore(store)
print("held" if leases.acquire("r1") else "refused", leases.owner, flush=True)
sys.stdin.read()  # hold it until the test closes our stdin
"""

TAKE = """
import os, sys
from plait.eventstore import SqlEventStore
from plait.eventstore.leases import LeaseStore
store = SqlEventStore(sys.argv[1])
leases = LeaseStore(store)
fence = leases.acquire("r1")
print("took" if fence else "refused", leases.owner, os.getpid(), flush=True)
"""


def _unshare_works() -> bool:
    if shutil.which("unshare") is None or os.geteuid() != 0:
        return False
    probe = subprocess.run(
        ["unshare", "-u", "-p", "-f", "--mount-proc", "true"], capture_output=True, timeout=30
    )
    return probe.returncode == 0


needs_namespaces = pytest.mark.skipif(not _unshare_works(), reason="needs root and unshare")


@needs_namespaces
def test_a_holder_in_another_pid_namespace_with_the_same_hostname_keeps_its_lease(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'plait.db'}"
    SqlEventStore(url).close()  # the schema, before either container opens it
    # The holder runs as PID 2 of its namespace (sh is PID 1); the taker as PID 1 of its own,
    # where PID 2 does not exist: to a hostname-and-PID check the holder looks dead.
    holder = subprocess.Popen(
        [
            "unshare",
            "-u",
            "-p",
            "-f",
            "--mount-proc",
            "sh",
            "-c",
            '"$0" -c "$1" "$2"; exit $?',
            sys.executable,
            HOLD,
            url,
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        held, holder_owner = holder.stdout.readline().split()
        assert held == "held"
        taker = subprocess.run(
            ["unshare", "-u", "-p", "-f", "--mount-proc", sys.executable, "-c", TAKE, url],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        outcome, taker_owner, taker_pid = taker.stdout.split()
    finally:
        assert holder.stdin is not None
        assert holder.stdout is not None
        holder.stdin.close()
        holder.wait(timeout=30)
        holder.stdout.close()
    theirs, mine = Owner.parse(holder_owner), Owner.parse(taker_owner)
    assert theirs is not None
    assert mine is not None
    assert theirs.host == mine.host  # one hostname ...
    assert theirs.pid_namespace != mine.pid_namespace  # ... two PID namespaces
    assert (theirs.pid, int(taker_pid)) == (2, 1)
    assert outcome == "refused"


def test_a_holder_that_died_in_this_namespace_is_taken_over_at_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'plait.db'}"
    store = SqlEventStore(url)
    try:
        holder = subprocess.Popen(
            [sys.executable, "-c", HOLD, url],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert holder.stdout is not None
        assert holder.stdout.readline().split()[0] == "held"
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
        holder.stdout.close()
        assert holder.stdin is not None
        holder.stdin.close()
        taken = LeaseStore(store).acquire("r1")  # no wait for the 30 s expiry
        assert taken is not None
        assert taken.epoch == 2
    finally:
        store.close()


def test_a_live_holder_in_this_process_is_never_taken_as_dead(tmp_path: Path) -> None:
    store = SqlEventStore(f"sqlite:///{tmp_path / 'plait.db'}")
    try:
        assert LeaseStore(store).acquire("r1") is not None
        assert LeaseStore(store).acquire("r1") is None  # another owner of this very process
        me = this_process()
        assert (me.pid, me.boot_id) == (
            os.getpid(),
            Path("/proc/sys/kernel/random/boot_id").read_text().strip(),
        )
    finally:
        store.close()
