"""A task repository's files, written and read by plait itself where git would cost a
process (worktrees/isolated.py uses them; bench/RESULTS.md counts the processes).

- `init`: only the first task repository of a directory (a run's, the pool's) costs a
  `git init --template=`; the next ones get the same files, written directly, with HEAD
  naming their own branch, and so does a pool slot made anew for its next task
  (pool_git.renew: its git dir holds only its index and objects then; a slot renewed
  before any fresh repository of its directory was made in this process gets a real
  init, whose files are not recorded: its objects are no part of them). Safe because what
  git writes there depends on git, the user's configuration and git's probes of the file
  system (core.filemode and the like), all the same for one directory within one process;
  tests/integration/test_task_repositories.py compares the two (a renewed slot too).
- `into_users_objects`: the environment that has plait's own git commands in a task
  repository (add, write-tree, commit-tree) write their objects straight into the user's
  object store, the task's own objects read as an alternate. `has_own_objects`: whether
  the task made objects itself (its own `git add`, its commits). Without any, everything
  the result reaches is in the user's store already, and the fetch that would copy it
  there (a git process) is skipped: it would copy nothing. Not in a repository shared by
  a group (core.sharedRepository): there the objects come through the fetch, as before.
- `tree_of`: a base commit's tree, asked once (a commit never changes its tree).
"""

from __future__ import annotations

import os
from pathlib import Path

from plait.execution.git.cli import Git

__all__ = ["has_own_objects", "init", "into_users_objects", "tree_of"]


_TREES: dict[str, str] = {}  # commit -> its tree: objects never change


async def tree_of(git: Git, path: Path, commit: str) -> str:
    tree = _TREES.get(commit)
    if tree is None:
        tree = (await git.run("rev-parse", f"{commit}^{{tree}}", cwd=path)).stdout.strip()
        _TREES[commit] = tree
    return tree


async def into_users_objects(git: Git, path: Path) -> dict[str, str]:
    """The environment that has plait's own git commands in a task repository (add,
    write-tree, commit-tree) write their objects into the user's object store, reading the
    task's own objects too: then a task that made none leaves nothing to fetch."""
    if not (path / ".git").is_dir():
        return {}  # a linked worktree: the user's store is its own already
    common = await git.common_dir()
    if await _shared(git, common):
        return {}  # git in the user's repository writes there, with the group's permissions
    return {
        "GIT_OBJECT_DIRECTORY": str(common / "objects"),
        "GIT_ALTERNATE_OBJECT_DIRECTORIES": _one_alternate(path / ".git" / "objects"),
    }


_SHARED: dict[Path, bool] = {}  # common dir -> its core.sharedRepository asks for a group


async def _shared(git: Git, common: Path) -> bool:
    """The user's repository is shared by a group (core.sharedRepository): the objects
    written into it must get the group's permissions, which only git running in that
    repository gives them (the fetch does). Asked once per repository and process."""
    known = _SHARED.get(common)
    if known is None:
        got = await git.run("config", "--get", "core.sharedRepository", check=False)
        known = got.stdout.strip().lower() not in ("", "false", "umask", "0", "no", "off")
        _SHARED[common] = known
    return known


def _one_alternate(path: Path) -> str:
    """`path` as the one entry of a colon-separated alternates list: C-quoted when it holds
    a colon or starts with a quote (git reads such an entry unquoted)."""
    text = str(path)
    if ":" not in text and not text.startswith('"'):
        return text
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def has_own_objects(path: Path) -> bool:
    """The task's repository holds objects of its own, loose or packed (its own `git add`
    or commits); True too when that cannot be read (then plait fetches, as it always may)."""
    objects = path / ".git" / "objects"
    try:
        with os.scandir(objects) as entries:
            for entry in entries:
                if entry.name == "info":
                    continue  # alternates, no object
                if entry.name != "pack":
                    return True  # a loose object's directory (or something unknown)
                with os.scandir(entry.path) as packs:
                    if any(True for _ in packs):
                        return True
    except OSError:
        return True
    return False


# What `git init --template=` wrote for the first task repository of a directory (a run's,
# the pool's): every other task repository there gets the same files, written directly.
_INIT_FILES: dict[Path, list[tuple[str, int, bytes | None]]] = {}


async def init(git: Git, path: Path, branch: str) -> None:
    """`git init` at `path` on `branch`: a real one for the first repository of its
    directory, the same files written for the next ones (git's probes of the file system,
    e.g. core.filemode, hold for the whole directory; only HEAD names another branch)."""
    made = _INIT_FILES.get(path.parent)
    own = path / ".git"
    if made is None:
        renewed = os.path.lexists(own)  # a pool slot renewed (pool_git.renew)
        await git.run("init", "--quiet", "--template=", f"--initial-branch={branch}", str(path))
        if not renewed:  # a renewed slot's objects are its earlier tasks', not init's
            _INIT_FILES[path.parent] = _read_init(own)
        return
    _write_init(own, made, f"ref: refs/heads/{branch}\n".encode())


def _read_init(own: Path) -> list[tuple[str, int, bytes | None]]:
    """Every directory and file of a fresh repository's git dir but HEAD: (relative path,
    mode, bytes or None for a directory), parents before children."""
    found: list[tuple[str, int, bytes | None]] = []
    for directory, subdirs, names in os.walk(own):
        subdirs.sort()
        here = Path(directory)
        found.append((str(here.relative_to(own)), here.stat().st_mode & 0o7777, None))
        for name in sorted(names):
            if here == own and name == "HEAD":
                continue
            file = here / name
            found.append(
                (str(file.relative_to(own)), file.stat().st_mode & 0o7777, file.read_bytes())
            )
    return found


def _write_init(own: Path, made: list[tuple[str, int, bytes | None]], head: bytes) -> None:
    """The files written over what is there: a renewed pool slot's git dir keeps only its
    index and objects (pool_git.renew), whose directories are made as init makes them."""
    for relative, mode, data in made:
        target = own / relative
        if data is None:
            target.mkdir(parents=True, exist_ok=True)
        else:
            target.write_bytes(data)
        os.chmod(target, mode)
    (own / "HEAD").write_bytes(head)
