"""Repository-relative paths in a plan: the `files` hints, `copy_ignored`, `keep_ignored`,
`setup_inputs` and `junit_report`.

Paths are compared by components, so `src` and `src/` are the same directory,
`src/a.py` lies inside both, and `src/a.pyc` is unrelated to `src/a.py`.
"""

from __future__ import annotations

from collections.abc import Iterable


def path_parts(path: str) -> tuple[str, ...]:
    """Components of a relative path; `.` and empty segments carry no meaning."""
    return tuple(part for part in path.split("/") if part not in ("", "."))


def relative_path_problem(path: str) -> str | None:
    """Why `path` is not a path inside the repository, or None if it is."""
    if path.startswith("/"):
        return "must be a path relative to the repository, not an absolute path"
    if ".." in path.split("/"):
        return "must not contain '..'"
    return None


def copy_path_problem(path: str) -> str | None:
    """Like `relative_path_problem`, but `.` (the whole checkout) cannot be copied."""
    problem = relative_path_problem(path)
    if problem is None and not path_parts(path):
        problem = "must name a file or directory, not the repository root"
    if problem is None and ".git" in path_parts(path):  # copying git's own files breaks a worktree
        problem = "must not be inside '.git'"
    return problem


# Caches that judge a commit by something other than its files (a .pyc is trusted while the
# source's size and mtime in seconds match): removed before every test run, even inside a
# kept setup output, so they can never be kept themselves.
CACHE_DIRS = frozenset({"__pycache__", ".pytest_cache"})
CACHE_SUFFIXES = (".pyc", ".pyo")


def kept_path_problem(path: str) -> str | None:
    """Like `copy_path_problem`; a cache plait always removes cannot be kept either."""
    problem = copy_path_problem(path)
    parts = path_parts(path)
    if problem is None and (CACHE_DIRS & set(parts) or parts[-1].endswith(CACHE_SUFFIXES)):
        problem = "is a cache plait removes before every test run; it cannot be kept"
    return problem


def overlap(left: Iterable[str], right: Iterable[str]) -> tuple[str, str] | None:
    """The first pair of paths that share a file (equal, or one a directory of the other)."""
    right_parts = [(path, path_parts(path)) for path in right]
    for path in left:
        parts = path_parts(path)
        for other, other_parts in right_parts:
            shorter = min(len(parts), len(other_parts))
            if parts[:shorter] == other_parts[:shorter]:
                return path, other
    return None
