"""The chain's anchor: its head (position and hash) recorded outside the events table.

The hash chain alone shows an event changed in place, but not a history cut short, wiped,
or rewritten with every later hash recomputed: such a history is a valid chain again. So the
store also writes the head of the chain to a head file, at most every ANCHOR_SECONDS while
appending, whenever asked (the landing code does, at each landing) and when it closes; and
`plait verify` prints the head for the user to keep (`verify --expect-head`). `verify`
then checks that the recorded head is still in the chain, at its position, with its hash.

The head file lives beside an SQLite database (PATH.head) and, for PostgreSQL, in plait's
data directory (heads/<digest of the URL>.head). It only moves forward: a writer never
replaces a head with an older one.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

import platformdirs
from sqlalchemy.engine import URL

ANCHOR_SECONDS = 1.0
_HEAD = re.compile(r"^(\d+):([0-9a-f]{64})$")


@dataclass(frozen=True, order=True)
class ChainHead:
    position: int
    hash: str

    def __str__(self) -> str:
        return f"{self.position}:{self.hash}"

    @classmethod
    def parse(cls, text: str) -> ChainHead:
        found = _HEAD.match(text.strip())
        if found is None:
            raise ValueError(
                f"not a chain head (POSITION:SHA256, as `plait verify` prints it): {text!r}"
            )
        return cls(int(found.group(1)), found.group(2))


def store_key(url: URL) -> str:
    """A name for one database, the same on every host: a digest of its URL (no password)."""
    return hashlib.sha256(url.render_as_string(hide_password=True).encode()).hexdigest()[:24]


def head_ref_for(url: URL) -> str:
    """The ref that anchors this database's chain in each repository plait lands in."""
    return f"refs/plait/chain-head/{store_key(url)}"


def head_file_for(url: URL) -> Path | None:
    """Where the store anchors its chain; None for an in-memory database."""
    if url.get_backend_name() == "sqlite":
        database = url.database or ""
        if database in ("", ":memory:") or database.startswith("file:"):
            return None
        return Path(f"{Path(database).expanduser()}.head")
    heads = Path(platformdirs.user_data_dir("plait", appauthor=False)) / "heads"
    return heads / f"{store_key(url)}.head"


class HeadFile:
    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> ChainHead | None:
        """The recorded head; None if none was recorded. ValueError if the file is garbled."""
        try:
            content = self.path.read_text(encoding="ascii")
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"head file {self.path} cannot be read: {exc}") from None
        try:
            return ChainHead.parse(content)
        except ValueError as exc:
            raise ValueError(f"head file {self.path} is garbled: {exc}") from None

    def write(self, head: ChainHead) -> None:
        """Record `head` unless a later one is recorded. Best effort: an anchor that cannot
        be written leaves the chain as it was (verify then checks against the older one)."""
        try:
            current = self.read()
        except ValueError:
            current = None
        if current is not None and current.position >= head.position:
            return
        temporary = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            temporary.write_text(f"{head}\n", encoding="ascii")
            os.replace(temporary, self.path)
        except OSError:
            temporary.unlink(missing_ok=True)
