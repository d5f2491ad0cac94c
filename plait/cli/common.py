"""What several commands share: the store, the settings, and hints that work as printed."""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import sys

from plait.eventstore import SqlEventStore, configured_url
from plait.execution.settings import Settings
from plait.projections import Projector, ReadModels, all_projections


def open_store(args: argparse.Namespace) -> SqlEventStore:
    return SqlEventStore(configured_url(args.db))


def read_models(store: SqlEventStore) -> ReadModels:
    """The read models, brought up to date with everything stored so far."""
    Projector(store, all_projections()).catch_up()
    return ReadModels(store)


# The lease's clock (docs/reliability.md, "Several servers"), from the environment.
LEASE_VARIABLES = {
    "PLAIT_LEASE_TTL": "ttl",
    "PLAIT_LEASE_RENEW_EVERY": "renew_every",
    "PLAIT_TAKEOVER_EVERY": "takeover_every",
}


def settings(args: argparse.Namespace, *, serving: bool = False) -> Settings:
    """A command's settings. Pooled worktrees outlive the command (`keep_pool`): the next
    run on the repository, and each of its batches, reuses them. Only a server keeps its
    read models following the store; a command that drives a run shows it from memory."""
    from plait.cli.errors import UsageError
    from plait.eventstore.leases import LeaseTimings

    timings = {
        field: _seconds(name) for name, field in LEASE_VARIABLES.items() if name in os.environ
    }
    tolerance = (
        _seconds("PLAIT_OUTAGE_TOLERANCE") if "PLAIT_OUTAGE_TOLERANCE" in os.environ else None
    )
    try:
        leases = LeaseTimings(**timings)
        if tolerance is None:  # the default, unless the lease is too short for it
            tolerance = min(Settings.outage_tolerance, (leases.ttl - leases.renew_every) / 2)
        return Settings(
            reuse_worktrees=not getattr(args, "fresh_worktrees", False),
            worktree_root=getattr(args, "worktree_root", None),
            leases=leases,
            outage_tolerance=tolerance,
            keep_pool=True,
            follow_projections=serving,
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _seconds(name: str) -> float:
    from plait.cli.errors import UsageError

    text = os.environ[name]
    try:
        value = float(text)
    except ValueError:
        raise UsageError(f"{name}={text!r}: give a number of seconds") from None
    if not 0 < value < 1e9:
        raise UsageError(f"{name}={text!r}: give a positive number of seconds")
    return value


def program() -> str:
    """How to call this plait again: `plait` when that is the one on PATH, else the path it
    was started by (`scripts/demo` runs .venv/bin/plait, which a shell may not find)."""
    invoked = sys.argv[0] if sys.argv else ""
    if os.path.basename(invoked) != "plait":
        return "plait"
    found = shutil.which("plait")
    if found is not None and os.path.realpath(found) == os.path.realpath(invoked):
        return "plait"
    return os.path.abspath(invoked)


def hint(args: argparse.Namespace, *words: str) -> str:
    """A plait command line to print for the user: the same plait, with the `--db` this
    command was given, so that it finds the same run when pasted."""
    line = [program(), *words]
    if getattr(args, "db", None):
        line += ["--db", args.db]
    return shlex.join(line)
