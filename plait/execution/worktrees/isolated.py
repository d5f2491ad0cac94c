"""A task's own repository: its checkout, refs, config and hooks are its alone.

A linked worktree shares everything but HEAD and the index with the user's repository: a
task's `git checkout main`, `git config` or hook lands in the user's. So a task gets a
repository of its own instead, `git init` in its directory, that reads the user's objects
read-only through `objects/info/alternates` (no copy: creating one costs about what
`git worktree add` does, see bench/RESULTS.md). Whatever the task does to its HEAD,
branches, config or hooks stays there. plait takes the work back itself:

- `save`: the task's files (a temporary index, so the task's own index is left as it was)
  committed on top of the task's HEAD with `commit-tree` (its merge in progress too), and
  the task's branch in the user's repository moved to it by compare-and-swap (`update-ref
  <branch> NEW OLD`): never "whatever HEAD is". The commit's objects are written into
  the user's store; it is fetched there only from a task that made objects of its own.
- commits the task made that the result does not reach (it committed, then detached or
  reset) are kept: one commit whose parents are their tips, at the attempt's kept ref.
- a nested repository (a gitlink the base did not have) is refused: NestedRepository.

The user's identity (user.name, user.email) and local ignore rules (info/exclude) are
copied in, so an agent's own commits work as they did in a linked worktree. Where a file
does what a git process would, plait writes or reads it (repo_files.py: one `git init` per
directory, the objects, the fetch rule).

`create` makes one; a pool slot is made anew the same way for its next task (pool_git.renew,
its index and objects kept). Before any git runs in a task's directory after the task ran,
own_files.py checks that it still holds the repository made here; task_dirs.py reads and
removes them.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from plait.execution.git.cli import Git
from plait.execution.worktrees import own_files, repo_files
from plait.execution.worktrees.task_dirs import head_of

__all__ = ["NestedRepository", "Saved", "create", "is_isolated", "nested_paths", "save"]

GITLINK = "160000"


class NestedRepository(Exception):
    """The task left a git repository inside its checkout."""

    def __init__(self, paths: Sequence[str]) -> None:
        self.paths = list(paths)
        names = ", ".join(self.paths)
        super().__init__(
            f"the task created a nested git repository ({names}): plait does not commit a"
            " repository inside a repository (it would land as a dangling gitlink). Its"
            " files are kept in the task's worktree; remove its .git (or add it as ordinary"
            " files) and retry"
        )


@dataclass(frozen=True)
class Saved:
    commit: str | None  # the attempt's result on the task branch; None: nothing changed
    kept: str | None = None  # a commit keeping the task's other commits, if it left any
    changed: list[str] | None = None  # paths the result changed from the base, when known


def is_isolated(path: Path) -> bool:
    """A task directory with a repository of its own (a linked worktree has a .git file)."""
    return (path / ".git").is_dir()


async def create(
    git: Git,
    path: Path,
    branch: str,
    sha: str,
    *,
    alias: str | None,
    sparse: Sequence[str] | None = None,
) -> None:
    """A repository at `path` on `branch` at `sha`, reading the user's objects. `alias`
    (the run's base branch) names `sha` too, so `git diff main` works in it. `sparse`:
    non-cone sparse-checkout patterns (a pooled slot's), applied before the checkout."""
    common = await git.common_dir()
    path.parent.mkdir(parents=True, exist_ok=True)
    await own_repository(git, common, path, branch, sha, alias)
    await check_out(git, path, sparse)


async def own_repository(
    git: Git, common: Path, path: Path, branch: str, sha: str, alias: str | None
) -> None:
    """`git init` at `path` (repo_files.init: written as the directory's first one made;
    again, for a pool slot's renewal, pool_git.renew, over the index and objects it kept),
    the user's objects as alternates, their ignore rules and identity, and
    the branches."""
    await repo_files.init(git, path, branch)
    own = path / ".git"
    (own / "objects" / "info").mkdir(parents=True, exist_ok=True)
    (own / "objects" / "info" / "alternates").write_text(f"{common / 'objects'}\n")
    (own / "info").mkdir(exist_ok=True)
    with contextlib.suppress(OSError):
        shutil.copyfile(common / "info" / "exclude", own / "info" / "exclude")
    lines = await _user_identity(git)
    if lines:
        values = "".join(f"\t{k.split('.')[1]} = {_quoted(v)}\n" for k, v in lines.items())
        with (own / "config").open("a", encoding="utf-8") as config:
            config.write(f"[user]\n{values}")
    refs = [branch] + ([alias] if alias and alias != branch else [])
    for name in refs:
        ref = own / "refs" / "heads" / name
        ref.parent.mkdir(parents=True, exist_ok=True)
        ref.write_text(f"{sha}\n")


async def check_out(git: Git, path: Path, sparse: Sequence[str] | None) -> None:
    """The checkout of HEAD (with the index a renewed slot kept: only differing files)."""
    if sparse is not None:
        await git.run("sparse-checkout", "set", "--no-cone", "--", *sparse, cwd=path)
    await git.run("reset", "--quiet", "--hard", cwd=path)


_IDENTITIES: weakref.WeakKeyDictionary[Git, dict[str, str]] = weakref.WeakKeyDictionary()


async def _user_identity(git: Git) -> dict[str, str]:
    """user.name and user.email as the user's repository has them (once per Git object)."""
    known = _IDENTITIES.get(git)
    if known is None:
        listed = await git.run("config", "--get-regexp", r"^user\.(name|email)$", check=False)
        # The effective value of each (the last one git lists wins, as it does for git).
        known = dict(line.split(" ", 1) for line in listed.stdout.splitlines() if " " in line)
        _IDENTITIES[git] = known
    return known


def _quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


async def save(
    git: Git,
    path: Path,
    *,
    base: str,
    message: str,
    identity: Sequence[str],
    excludes: Path | None,
    drop: Sequence[str] = (),
    allow_nested: bool = False,
) -> Saved:
    """Commit the task's files on its HEAD and fetch the result (and any stray commits) into
    the user's repository. The caller moves the task branch (see module docstring).

    `drop`: paths never committed (copy_ignored secrets) unless the base tracks them.
    NestedRepository unless `allow_nested` (then gitlinks are left out instead).
    ForeignRepository, before any git runs there: `path` no longer holds plait's repository.
    """
    own_files.check(path)
    head, head_tree = await _head(git, path, base)
    objects = await repo_files.into_users_objects(git, path)
    # Saving a result stages it in the task's own index (its checkout then shows it
    # committed); keeping a failed attempt's work leaves the index as the task left it.
    tree = await _tree_of_files(
        git, path, base, excludes, drop, strip_gitlinks=allow_nested, own_index=not allow_nested
    )
    merging = _merge_heads(path)
    parents = [head, *merging]
    commit = head
    if merging or tree != head_tree:
        argv = [*identity, "-c", "commit.gpgsign=false", "commit-tree", tree]
        for parent in parents:
            argv += ["-p", parent]
        made = await git.run(*argv, "-m", message, cwd=path, env=objects)
        commit = git.made_commit(made.stdout, parents=parents)
    if merging:  # the merge is committed now: the checkout is no longer in the middle of it
        await git.run("merge", "--quit", cwd=path, check=False)
    changed = None
    if not allow_nested and commit != base:
        nested, changed = await nested_paths(git, path, base, commit)
        if nested:
            raise NestedRepository(nested)
    strays = await _stray_tips(git, path, commit, base)
    kept = None
    if strays:
        argv = [*identity, "commit-tree", f"{commit}^{{tree}}"]
        for tip in strays:
            argv += ["-p", tip]
        note = "plait: commits the task made that its result does not hold"
        kept = git.made_commit((await git.run(*argv, "-m", note, cwd=path, env=objects)).stdout)
    wanted = [c for c in (commit, kept) if c is not None and c != base]
    if wanted:
        await _fetch(
            git, path, wanted, head=commit if not allow_nested and commit != head else None
        )
    return Saved(None if commit == base else commit, kept, changed)


async def nested_paths(git: Git, path: Path, base: str, commit: str) -> tuple[list[str], list[str]]:
    """(gitlinks `commit` has that `base` had not: nested repositories the task made, every
    path that differs between the two)."""
    listed = await git.run("diff-tree", "-r", "-z", "--no-renames", base, commit, cwd=path)
    fields = listed.stdout.split("\0")
    found, changed = [], []
    for meta, name in zip(fields[::2], fields[1::2], strict=False):
        modes = meta.lstrip(":").split(" ")
        changed.append(name)
        if len(modes) > 1 and modes[1] == GITLINK and modes[0] != GITLINK:
            found.append(name)
    return found, changed


async def _head(git: Git, path: Path, base: str) -> tuple[str, str]:
    """The commit HEAD names (`base` when it names none: an orphan branch) and its tree."""
    if head_of(path)[1] == base:  # read from the files: HEAD (or its branch) names the base
        return base, await repo_files.tree_of(git, path, base)
    result = await git.run("rev-parse", "HEAD^{commit}", "HEAD^{tree}", cwd=path, check=False)
    lines = result.stdout.split()
    if result.returncode == 0 and len(lines) == 2:
        return lines[0], lines[1]
    tree = await git.run("rev-parse", f"{base}^{{tree}}", cwd=path)
    return base, tree.stdout.strip()


def _merge_heads(path: Path) -> list[str]:
    """The merge the task's checkout is in the middle of (a conflict being resolved)."""
    git_dir = path / ".git"
    if git_dir.is_file():  # a linked worktree: its own directory under the common one
        pointer = git_dir.read_text().strip().removeprefix("gitdir: ")
        git_dir = (path / pointer).resolve()
    try:
        return (git_dir / "MERGE_HEAD").read_text().split()
    except OSError:
        return []


async def _tree_of_files(
    git: Git,
    path: Path,
    base: str,
    excludes: Path | None,
    drop: Sequence[str],
    *,
    strip_gitlinks: bool,
    own_index: bool,
) -> str:
    """The tree of every file in the checkout (as `git add -A` sees them), staged in the
    task's index, or else in a temporary copy of it so the task's own is left alone."""
    with tempfile.TemporaryDirectory(prefix="plait-index-") as scratch:
        env = await repo_files.into_users_objects(git, path)
        if not own_index:
            index = Path(scratch) / "index"
            own = await git.run("rev-parse", "--git-path", "index", cwd=path)
            with contextlib.suppress(OSError):
                shutil.copyfile(path / own.stdout.strip(), index)
            env["GIT_INDEX_FILE"] = str(index)
        add = ("-c", f"core.excludesFile={excludes}") if excludes is not None else ()
        await git.run(*add, "add", "-A", cwd=path, env=env)
        if drop:
            tracked = await git.run(
                "ls-tree", "-r", "--name-only", "-z", base, "--", *drop, cwd=path
            )
            untracked_in_base = [p for p in drop if p not in tracked.stdout.split("\0")]
            if untracked_in_base:
                argv = ("rm", "-r", "--cached", "--quiet", "--ignore-unmatch", "--")
                await git.run(*argv, *untracked_in_base, cwd=path, env=env)
        if strip_gitlinks:
            await _strip_gitlinks(git, path, base, env)
        return (await git.run("write-tree", cwd=path, env=env)).stdout.strip()


async def _strip_gitlinks(git: Git, path: Path, base: str, env: dict[str, str]) -> None:
    staged = await git.run("ls-files", "-s", "-z", cwd=path, env=env)
    links = [e.split("\t", 1)[1] for e in staged.stdout.split("\0") if e.startswith(GITLINK)]
    if not links:
        return
    had = await git.run("ls-tree", "-r", "-z", base, "--", *links, cwd=path)
    kept = {e.split("\t", 1)[1] for e in had.stdout.split("\0") if e.startswith(GITLINK)}
    gone = [name for name in links if name not in kept]
    if gone:
        await git.run(
            "update-index", "--force-remove", "-z", "--stdin", cwd=path, env=env,
            input="\0".join(gone),
        )  # fmt: skip


async def _stray_tips(git: Git, path: Path, result: str, base: str) -> list[str]:
    """Tips of the commits the task's branches, tags and HEAD's reflog reach but `result`
    does not: commits it made and moved away from. Only for a repository of the task's own
    (a linked worktree's branches are the user's)."""
    if not is_isolated(path) or _nothing_moved(path / ".git", {base, result}):
        return []
    argv = ("rev-list", "--parents", "--reflog", "--branches", "--tags", "--not", result, base)
    listed = await git.run(*argv, cwd=path, check=False)
    commits: list[str] = []
    parents: set[str] = set()
    for line in listed.stdout.splitlines():
        sha, *its_parents = line.split()
        commits.append(sha)
        parents.update(its_parents)
    return [sha for sha in commits if sha not in parents]


def _nothing_moved(own: Path, known: set[str]) -> bool:
    """No ref, tag or HEAD position of the task's repository was ever anything but `known`
    (read from its files): then it made no commit the result could miss."""
    if (own / "packed-refs").exists():
        return False
    try:
        for line in (own / "logs" / "HEAD").read_text().splitlines():
            if line.split(" ", 2)[1:2] != [] and line.split(" ", 2)[1] not in known:
                return False
        for directory, _, names in os.walk(own / "refs"):
            for name in names:
                if Path(directory, name).read_text().strip() not in known:
                    return False
    except (OSError, IndexError):
        return False
    return True


async def _fetch(git: Git, path: Path, commits: Sequence[str], *, head: str | None) -> None:
    """Copy `commits` (and what they need) from the task's repository into the user's;
    `head`: the task's HEAD moves there too (the result it was staged for)."""
    if not is_isolated(path):
        return  # a linked worktree writes its objects into the user's repository already
    if repo_files.has_own_objects(path):  # else the commits' objects are all there already
        # By id: protocol v2's upload-pack serves any object the repository has, so the
        # task's repository needs no ref for it.
        await git.run(
            "fetch", "--quiet", "--no-tags", "--no-write-fetch-head", "--no-auto-gc",
            "--no-recurse-submodules", str(path), *commits,
        )  # fmt: skip
    if head is not None:
        _move_head(path / ".git", head)


def _move_head(own: Path, commit: str) -> None:
    """HEAD (or the branch it is on) of the task's repository to `commit`: plait's own
    repository, so a file write, not a git process (no reflog entry)."""
    text = (own / "HEAD").read_text().strip()
    target = own / text.removeprefix("ref: ") if text.startswith("ref: refs/") else own / "HEAD"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(f"{commit}\n")
