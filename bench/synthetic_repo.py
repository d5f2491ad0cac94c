"""Synthetic repositories for the worktree benchmark, written with one `git fast-import`.

Layout: `src<a>/pkg<b>/mod<c>/file<d>.<ext>`, 25 files per directory, ten top-level
directories. Sizes follow a log-normal law (median 6 KB, mean about 10 KB, capped at
256 KB): text lines cut from one shared corpus, each file starting with a line of its own
so every blob is distinct. The main worktree is left unpopulated: nothing measured reads it.
"""

from __future__ import annotations

import random
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

_VOCABULARY = """
    def return self value import from class async await for in if else elif while try
    except raise with as lambda yield none true false config request response handler
    parse render token index buffer stream cache state event error result options
"""
WORDS = tuple(_VOCABULARY.split())
EXTENSIONS = ("py", "ts", "md", "json", "txt")
FILES_PER_DIR = 25
TOP_DIRS = 10
MEDIAN_SIZE = 6_000
MAX_SIZE = 256_000
CHANGES_PER_BASE = (5, 1, 1)  # modified, added, deleted files in each new base commit
IDENTITY = "Bench <bench@localhost> 1700000000 +0000"


def corpus(rng: random.Random, size: int = 2 * MAX_SIZE) -> bytes:
    lines: list[str] = []
    length = 0
    while length < size:
        indent = "    " * rng.randrange(4)
        line = indent + " ".join(rng.choices(WORDS, k=rng.randrange(3, 14))) + "\n"
        lines.append(line)
        length += len(line)
    return "".join(lines).encode()


def file_path(index: int) -> str:
    d, rest = index % FILES_PER_DIR, index // FILES_PER_DIR
    a, b, c = rest % TOP_DIRS, (rest // TOP_DIRS) % 20, rest // (TOP_DIRS * 20)
    return f"src{a}/pkg{b}/mod{c}/file{d}.{EXTENSIONS[index % len(EXTENSIONS)]}"


@dataclass
class SyntheticRepo:
    path: Path
    files: int
    base_commits: list[str] = field(default_factory=list)  # [initial, then one per new base]
    checkout_bytes: int = 0


class _Writer:
    """Builds the fast-import stream: blobs and commits on refs/heads/main."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.text = corpus(self.rng)
        self.serial = 0

    def content(self, name: str) -> bytes:
        self.serial += 1
        size = min(MAX_SIZE, int(self.rng.lognormvariate(0, 1.0) * MEDIAN_SIZE))
        start = self.rng.randrange(len(self.text) - size)
        return f"# {name} ({self.serial})\n".encode() + self.text[start : start + size]

    @staticmethod
    def data(payload: bytes) -> bytes:
        return b"data %d\n" % len(payload) + payload + b"\n"

    def commit(self, mark: int, message: str, parent: int | None) -> bytes:
        head = f"commit refs/heads/main\nmark :{mark}\ncommitter {IDENTITY}\n".encode()
        head += self.data(message.encode())
        return head + (f"from :{parent}\n".encode() if parent else b"")

    def modify(self, name: str) -> tuple[bytes, int]:
        payload = self.content(name)
        return f"M 100644 inline {name}\n".encode() + self.data(payload), len(payload)


def _stream(writer: _Writer, files: int, bases: int, live: list[str]) -> Iterator[bytes]:
    yield writer.commit(1, f"{files} files", None)
    for index in range(files):
        change, _ = writer.modify(file_path(index))
        yield change
    added = files
    modified, new, deleted = CHANGES_PER_BASE
    for number in range(bases):
        yield writer.commit(number + 2, f"base {number + 1}", number + 1)
        for name in writer.rng.sample(live, modified):
            yield writer.modify(name)[0]
        for _ in range(new):
            live.append(file_path(added))
            added += 1
            yield writer.modify(live[-1])[0]
        for _ in range(deleted):
            yield f"D {live.pop(writer.rng.randrange(len(live)))}\n".encode()


def build(path: Path, files: int, bases: int, seed: int = 1) -> SyntheticRepo:
    """A repository of `files` files on main, followed by `bases` commits that each change
    a handful of files (CHANGES_PER_BASE)."""
    path.mkdir(parents=True)
    run = ["git", "-C", str(path)]
    subprocess.run([*run, "init", "--quiet", "--initial-branch=main"], check=True)
    for key, value in [
        ("user.name", "Bench"),
        ("user.email", "bench@localhost"),
        ("gc.auto", "0"),
        ("commit.gpgsign", "false"),
    ]:
        subprocess.run([*run, "config", key, value], check=True)
    writer = _Writer(seed)
    live = [file_path(i) for i in range(files)]
    importer = subprocess.Popen([*run, "fast-import", "--quiet"], stdin=subprocess.PIPE)
    assert importer.stdin is not None
    for chunk in _stream(writer, files, bases, live):
        importer.stdin.write(chunk)
    importer.stdin.close()
    if importer.wait() != 0:
        raise RuntimeError("git fast-import failed")
    log = subprocess.run(
        [*run, "rev-list", "--reverse", "main"], check=True, capture_output=True, text=True
    )
    sizes = subprocess.run(
        [*run, "ls-tree", "-r", "-l", "main"], check=True, capture_output=True, text=True
    )
    total = sum(int(line.split()[3]) for line in sizes.stdout.splitlines())
    return SyntheticRepo(path, files, log.stdout.split(), total)


def task_files(repo: SyntheticRepo, run: int) -> list[str]:
    """Two files of the initial set that the task of `run` edits (re-creates, if deleted)."""
    rng = random.Random(run)
    return [file_path(rng.randrange(repo.files)) for _ in range(2)]
