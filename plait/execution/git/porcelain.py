"""Parse `git worktree list --porcelain -z` (git 2.36+)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class WorktreeEntry:
    path: Path
    head: str | None  # None for a bare repository or an entry still initialising
    branch: str | None  # full ref as git prints it (refs/heads/...), None when detached
    detached: bool = False
    bare: bool = False
    locked: str | None = None  # the reason ("" when none was given); None when not locked
    prunable: str | None = None  # why git would prune it; None when it is fine
    # A task repository plait made (found under the worktree root, not in git's own list)
    own_repository: bool = False

    @property
    def branch_name(self) -> str | None:
        """The short branch name, or None when detached."""
        prefix = "refs/heads/"
        if self.branch and self.branch.startswith(prefix):
            return self.branch[len(prefix) :]
        return self.branch


def _entry(attributes: list[str]) -> WorktreeEntry:
    fields: dict[str, str] = {}
    for attribute in attributes:
        key, _, value = attribute.partition(" ")
        fields[key] = value
    return WorktreeEntry(
        path=Path(fields["worktree"]),
        head=fields.get("HEAD"),
        branch=fields.get("branch"),
        detached="detached" in fields,
        bare="bare" in fields,
        locked=fields.get("locked"),
        prunable=fields.get("prunable"),
    )


def parse_worktree_list(output: str) -> list[WorktreeEntry]:
    """Entries in git's order; records are NUL-terminated attributes, ended by an empty one."""
    entries: list[WorktreeEntry] = []
    attributes: list[str] = []
    for field in output.split("\0"):
        if field:
            attributes.append(field)
        elif attributes:
            entries.append(_entry(attributes))
            attributes = []
    return entries
