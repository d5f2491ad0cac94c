"""Run git for one repository: argv only, own process group, no prompts, typed errors.

    GitError                 a git command exited non-zero (argv, exit code, stderr)
     └── UnknownRevisionError  a ref or sha that does not name a commit
    InvalidRefName           (ValueError) a name refused before it reached git

Transient failures are retried a few times with a short backoff:
- `fatal: failed to read .git/worktrees/<name>/commondir` (or, from a fetch,
  `bad object worktrees/<name>/HEAD`): git 2.39 reading a worktree that a
  concurrent `git worktree add` is still initialising.
- `Unable to create '<...>.lock': File exists` while the lock file is younger
  than LOCK_STALE_AFTER seconds: a live git holds it. An older lock is most
  likely left by a killed git; we fail at once, naming the file, and never
  delete it ourselves (it could still belong to a slow live process).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import time
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from plait.execution.git.refs import InvalidRefName, validate_ref_component, validate_ref_name

__all__ = [
    "Git",
    "GitError",
    "GitResult",
    "InvalidRefName",
    "UnknownRevisionError",
    "git_environment",
    "transient_failure",
    "validate_ref_component",
    "validate_ref_name",
]

RETRY_ATTEMPTS = 6
RETRY_FIRST_DELAY = 0.05
LOCK_STALE_AFTER = 5.0
# How long a cancelled caller lets git finish before killing it: finishing
# releases index.lock cleanly, killing midway leaves it behind.
CANCEL_GRACE = 10.0
FALLBACK_IDENTITY = {"user.name": "plait", "user.email": "plait@localhost"}

# Variables that would point git at another repository than the one we chose.
_REPO_LOCATION_VARS = (
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_COMMON_DIR",
    "GIT_NAMESPACE",
    "GIT_CEILING_DIRECTORIES",
)
_COMMONDIR_RACE = re.compile(
    r"fatal: failed to read .*worktrees/[^/\s]+/commondir"
    # a fetch that lists every worktree's HEAD, one of them still being initialised
    r"|fatal: bad object worktrees/[^/\s]+/HEAD"
)
_LOCK_EXISTS = re.compile(r"Unable to create '([^']+\.lock)': File exists")


@dataclass(frozen=True)
class GitResult:
    returncode: int
    stdout: str
    stderr: str


# A full object id: SHA-1, or SHA-256 in a repository that uses it.
_FULL_SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")


class GitError(Exception):
    """A git command failed. `str()` is a readable one-paragraph message."""

    def __init__(self, argv: list[str], returncode: int, stderr: str, hint: str = "") -> None:
        self.argv = list(argv)
        self.returncode = returncode
        self.stderr = stderr
        detail = stderr.strip() or "(no output on stderr)"
        message = f"`{' '.join(argv)}` exited with {returncode}: {detail}"
        super().__init__(f"{message}\n{hint}" if hint else message)


class UnknownRevisionError(GitError):
    """A revision that does not name a commit in this repository."""

    def __init__(self, argv: list[str], revision: str) -> None:
        self.revision = revision
        super().__init__(argv, 1, f"unknown revision {revision!r}: not a commit in this repository")


def git_environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment every git child gets: ours, minus repository overrides, never prompting."""
    env = {k: v for k, v in os.environ.items() if k not in _REPO_LOCATION_VARS}
    env.update(GIT_TERMINAL_PROMPT="0", LC_ALL="C", GIT_EDITOR=":", GIT_PAGER="cat")
    env.update(extra or {})
    return env


def _lock_age(path: str) -> float | None:
    """Age of a lock file in seconds, or None when it is already gone."""
    try:
        return time.time() - os.stat(path).st_mtime
    except FileNotFoundError:
        return None


def transient_failure(stderr: str) -> bool:
    """Whether a failed git run is worth retrying as is (see module docstring)."""
    if _COMMONDIR_RACE.search(stderr):
        return True
    match = _LOCK_EXISTS.search(stderr)
    if match is None:
        return False
    age = _lock_age(match.group(1))
    return age is None or age < LOCK_STALE_AFTER


def _stale_lock_hint(stderr: str) -> str:
    match = _LOCK_EXISTS.search(stderr)
    age = _lock_age(match.group(1)) if match else None
    if match is None or age is None or age < LOCK_STALE_AFTER:
        return ""
    return (
        f"{match.group(1)} is older than {LOCK_STALE_AFTER:g}s: probably left by a git that was"
        " killed. Check that no git is running in this repository, then delete it."
    )


# One admin lock per (event loop, repository common dir): asyncio locks belong
# to a loop, and every Git object for the same repository must share it.
_admin_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[Path, asyncio.Lock]] = (
    weakref.WeakKeyDictionary()
)


def _admin_lock(common_dir: Path) -> asyncio.Lock:
    per_loop = _admin_locks.setdefault(asyncio.get_running_loop(), {})
    return per_loop.setdefault(common_dir, asyncio.Lock())


async def _communicate(proc: asyncio.subprocess.Process, data: bytes | None) -> tuple[bytes, bytes]:
    """communicate(), but a cancelled caller lets git finish (bounded) instead of orphaning it."""
    task = asyncio.ensure_future(proc.communicate(data))
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        try:
            await asyncio.wait_for(task, CANCEL_GRACE)
        except (TimeoutError, asyncio.CancelledError):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        raise


class Git:
    """git commands against one repository (its main worktree or any linked one via `cwd`)."""

    def __init__(self, repo: Path, *, executable: str = "git") -> None:
        self.repo = Path(repo)
        self.executable = executable
        self._common_dir: Path | None = None
        self._known_commits: set[str] = set()
        self._parents: dict[str, tuple[str, ...]] = {}  # of commits plait made (made_commit)
        self._identity: list[str] | None = None

    async def run(
        self,
        *args: str,
        cwd: Path | None = None,
        check: bool = True,
        env: Mapping[str, str] | None = None,
        input: str | None = None,
    ) -> GitResult:
        """Run `git ARGS` (an argv, never a shell) and retry transient failures."""
        argv = [self.executable, *args]
        for attempt in range(RETRY_ATTEMPTS):
            result = await self._run_once(argv, cwd, env, input)
            if result.returncode == 0 or not transient_failure(result.stderr):
                break
            if attempt < RETRY_ATTEMPTS - 1:
                await asyncio.sleep(RETRY_FIRST_DELAY * 2**attempt)
        if check and result.returncode != 0:
            raise GitError(argv, result.returncode, result.stderr, _stale_lock_hint(result.stderr))
        return result

    async def run_admin(self, *args: str, cwd: Path | None = None, check: bool = True) -> GitResult:
        """Run a worktree administration command, serialised per repository."""
        async with _admin_lock(await self.common_dir()):
            return await self.run(*args, cwd=cwd, check=check)

    async def _run_once(
        self,
        argv: list[str],
        cwd: Path | None,
        env: Mapping[str, str] | None,
        input: str | None,
    ) -> GitResult:
        # Own session: a Ctrl-C or kill aimed at our process group does not
        # stop git midway with index.lock held.
        proc = await asyncio.create_subprocess_exec(
            *argv,
            cwd=cwd or self.repo,
            env=git_environment(env),
            stdin=asyncio.subprocess.DEVNULL if input is None else asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
        data = None if input is None else input.encode()
        out, err = await _communicate(proc, data)
        assert proc.returncode is not None
        return GitResult(
            proc.returncode, out.decode(errors="replace"), err.decode(errors="replace")
        )

    async def rev_parse(self, rev: str, *, cwd: Path | None = None) -> str:
        """The full sha of the commit `rev` names; UnknownRevisionError if it names none."""
        if not rev or rev.startswith("-"):
            raise UnknownRevisionError([self.executable, "rev-parse"], rev)
        # rev-parse in git 2.39 has no reliable --end-of-options: refusing a
        # leading '-' above is what keeps `rev` from being read as an option.
        if rev in self._known_commits:
            return rev  # a full sha this repository already showed to be a commit
        argv = ("rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")
        result = await self.run(*argv, cwd=cwd, check=False)
        if result.returncode != 0:
            raise UnknownRevisionError([self.executable, *argv], rev)
        sha = result.stdout.strip()
        # Objects are immutable: once a sha names a commit it always will, so a run does not
        # pay a git process each time it re-checks a commit it made or verified itself.
        self._known_commits.add(sha)
        return sha

    def made_commit(self, printed: str, *, parents: Sequence[str] = ()) -> str:
        """The commit id a git command printed as the commit it just created (commit-tree).

        It is remembered like a verified one, so a later rev_parse of it costs no git process;
        `parents` (full ids, as given to commit-tree) too, so `is_ancestor` of one of them
        needs none either. Anything but a full id is returned as is and left for rev_parse
        to check.
        """
        sha = printed.strip()
        if _FULL_SHA.fullmatch(sha):
            self._known_commits.add(sha)
            if parents:
                self._parents[sha] = tuple(parents)
        return sha

    async def head_change(self, base: str, *, cwd: Path) -> tuple[str, list[str] | None]:
        """HEAD's commit at `cwd`, and the paths it changed from `base` if HEAD is one commit
        on top of `base` (None otherwise: ask `diff`). One git process for what `rev-parse
        HEAD` and `diff --name-only` take two for."""
        argv = ("diff-tree", "--always", "-r", "-z", "--no-renames", "--name-only")
        result = await self.run(*argv, "--format=%H %P", "HEAD", cwd=cwd)
        # `SHA PARENTS\0`, then (if any path changed) a newline and one `PATH\0` per path.
        header, _, rest = result.stdout.partition("\0")
        sha, *parents = header.split()
        self.made_commit(sha)
        if parents != [base]:
            return sha, None
        return sha, [name for name in rest.removeprefix("\n").split("\0") if name]

    async def ref_target(self, ref: str) -> str | None:
        """What the full ref name `ref` (refs/heads/...) points at, or None if it does not exist."""
        result = await self.run("rev-parse", "--verify", "--quiet", ref, check=False)
        return result.stdout.strip() if result.returncode == 0 else None

    async def current_branch(self, *, cwd: Path | None = None) -> str | None:
        """Short name of the branch checked out at `cwd`, or None when HEAD is detached."""
        result = await self.run("symbolic-ref", "--quiet", "--short", "HEAD", cwd=cwd, check=False)
        return result.stdout.strip() if result.returncode == 0 else None

    async def is_ancestor(self, ancestor: str, descendant: str) -> bool:
        """Whether `ancestor` is reachable from `descendant` (both must be commits)."""
        a, d = await self.rev_parse(ancestor), await self.rev_parse(descendant)
        if a == d or a in self._parents.get(d, ()):
            return True  # a commit plait made on `a` (commits never change their parents)
        result = await self.run("merge-base", "--is-ancestor", a, d, check=False)
        if result.returncode not in (0, 1):
            argv = [self.executable, "merge-base", "--is-ancestor", a, d]
            raise GitError(argv, result.returncode, result.stderr)
        return result.returncode == 0

    async def identity_options(self, *, cwd: Path | None = None) -> list[str]:
        """`-c user.name=... -c user.email=...` for whichever of the two is not configured.

        Commits plait makes itself must not fail on a machine with no identity;
        GIT_AUTHOR_*/GIT_COMMITTER_* in the environment still win over -c.
        """
        if self._identity is not None:
            return list(self._identity)
        # One git process for both keys, once per repository: this is asked before every
        # commit plait makes.
        listed = await self.run(
            "config", "--get-regexp", r"^user\.(name|email)$", cwd=cwd, check=False
        )
        configured = {line.split(" ", 1)[0] for line in listed.stdout.splitlines()}
        options: list[str] = []
        for key, fallback in FALLBACK_IDENTITY.items():
            if key not in configured:
                options += ["-c", f"{key}={fallback}"]
        self._identity = options
        return list(options)

    async def common_dir(self) -> Path:
        """The repository's common git dir (shared by all its worktrees), absolute."""
        if self._common_dir is None:
            out = await self.run("rev-parse", "--path-format=absolute", "--git-common-dir")
            self._common_dir = Path(out.stdout.strip()).resolve()
        return self._common_dir

    async def toplevel(self, *, cwd: Path | None = None) -> Path:
        """Root of the working tree containing `cwd` (default: the repository path)."""
        out = await self.run("rev-parse", "--show-toplevel", cwd=cwd)
        return Path(out.stdout.strip()).resolve()
