"""The event store's chain head, kept in each repository plait lands in.

At every landing the run's repository gets a ref (eventstore.anchor.head_ref_for: one per
database) naming a blob that holds the chain's head. `plait verify` checks the history
against it, so a store whose head file was lost with it is still held to its landings.
"""

from __future__ import annotations

from plait.eventstore.anchor import ChainHead
from plait.execution.git.cli import Git


async def anchor_chain(git: Git, ref: str, head: ChainHead) -> None:
    blob = await git.run("hash-object", "-w", "--stdin", input=f"{head}\n")
    await git.run("update-ref", ref, blob.stdout.strip())


async def anchored_chain(git: Git, ref: str) -> ChainHead | None:
    """The chain head kept under `ref`; None if there is none (or it is not a head)."""
    shown = await git.run("cat-file", "blob", ref, check=False)
    if shown.returncode != 0:
        return None
    try:
        return ChainHead.parse(shown.stdout)
    except ValueError:
        return None
