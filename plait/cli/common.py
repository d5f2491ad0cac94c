"""What several commands share: the store, the settings, and hints that work as printed."""

from __future__ import annotations

import argparse
import shlex

from plait.eventstore import SqlEventStore, configured_url
from plait.execution.settings import Settings


def open_store(args: argparse.Namespace) -> SqlEventStore:
    return SqlEventStore(configured_url(args.db))


def settings(args: argparse.Namespace) -> Settings:
    return Settings(
        reuse_worktrees=getattr(args, "reuse_worktrees", False),
        worktree_root=getattr(args, "worktree_root", None),
    )


def hint(args: argparse.Namespace, *words: str) -> str:
    """A plait command line to print for the user: with the `--db` this command was given,
    so that it finds the same run when pasted."""
    line = ["plait", *words]
    if getattr(args, "db", None):
        line += ["--db", args.db]
    return shlex.join(line)
