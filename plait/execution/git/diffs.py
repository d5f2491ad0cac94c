"""A task attempt's diff against the commit it started from: its commit once it has one,
else what its worktree holds so far (a running task's work in progress)."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from plait.domain.run import AttemptState, TaskState
from plait.execution.git.cli import Git, GitError

MAX_PATCH = 512 * 1024  # characters of patch text in one answer


class NoDiff(LookupError):
    """Nothing to diff: the message says why (no such attempt, not started, gone)."""


@dataclass(frozen=True)
class Diff:
    base: str
    head: str | None  # None: the worktree's uncommitted state
    files: list[dict[str, Any]]
    patch: str
    truncated: bool
    source: str  # "commit" | "worktree"


async def task_diff(repo: Path, task: TaskState, attempt: int | None = None) -> Diff:
    chosen = _attempt(task, attempt)
    git = Git(repo)
    try:
        if chosen.commit:
            numstat, text = await _between(git, chosen.base_commit, chosen.commit)
            source = "commit"
        elif task.worktree_id == chosen.worktree_id and task.worktree_path:
            where = Path(task.worktree_path)
            if not where.is_dir():
                raise NoDiff(f"task {task.task_id!r}: its worktree {where} is gone")
            numstat, text = await _in_progress(git, where, chosen.base_commit)
            source = "worktree"
        else:
            raise NoDiff(f"task {task.task_id!r} attempt {chosen.attempt} committed nothing")
    except GitError as exc:
        raise NoDiff(f"task {task.task_id!r}: git could not diff it: {exc}") from None
    return Diff(
        base=chosen.base_commit,
        head=chosen.commit,
        files=_files(numstat),
        patch=text[:MAX_PATCH],
        truncated=len(text) > MAX_PATCH,
        source=source,
    )


async def _between(git: Git, base: str, head: str) -> tuple[str, str]:
    numstat = await git.run("diff", "--numstat", "--no-renames", "-z", base, head, "--")
    patch = await git.run("diff", "--no-renames", "--no-color", base, head, "--")
    return numstat.stdout, patch.stdout


async def _in_progress(git: Git, worktree: Path, base: str) -> tuple[str, str]:
    """Everything in the worktree (new files too, ignored ones not) against `base`, staged
    in an index of our own: the task's own index, maybe in use right now, is not touched."""
    with tempfile.TemporaryDirectory(prefix="plait-diff-") as scratch:
        env = {"GIT_INDEX_FILE": str(Path(scratch) / "index")}
        await git.run("read-tree", base, cwd=worktree, env=env)
        await git.run("add", "-A", cwd=worktree, env=env)
        argv = ("diff", "--cached", "--no-renames")
        numstat = await git.run(*argv, "--numstat", "-z", base, "--", cwd=worktree, env=env)
        patch = await git.run(*argv, "--no-color", base, "--", cwd=worktree, env=env)
    return numstat.stdout, patch.stdout


def _attempt(task: TaskState, attempt: int | None) -> AttemptState:
    started = task.started_attempts()
    if not started:
        raise NoDiff(f"task {task.task_id!r} has not started yet")
    if attempt is None:
        with_work = [a for a in started if a.commit]
        return with_work[-1] if with_work else started[-1]
    for candidate in started:
        if candidate.attempt == attempt:
            return candidate
    raise NoDiff(f"task {task.task_id!r} has no attempt {attempt}")


def _files(numstat: str) -> list[dict[str, Any]]:
    """`--numstat -z`: `ADDED\\tDELETED\\tPATH\\0` per file; `-` counts for a binary file."""
    files = []
    for record in filter(None, numstat.split("\0")):
        added, deleted, path = record.split("\t", 2)
        binary = added == "-"
        files.append(
            {
                "path": path,
                "additions": None if binary else int(added),
                "deletions": None if binary else int(deleted),
                "binary": binary,
            }
        )
    return files
