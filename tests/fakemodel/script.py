"""What the fake model does, read from directives in the conversation's text.

A directive is a line `fake: VERB ARGS` anywhere in the user's text:

    fake: write PATH CONTENT   write CONTENT (rest of the line, `\\n` for a newline) to PATH
    fake: nothing              answer in words, change nothing
    fake: fail 401             answer every request with HTTP 401 (bad API key)
    fake: fail 500             answer every request with HTTP 500 (provider down)
    fake: hang                 accept the request and never answer
    fake: leave-conflicts      when asked to resolve conflicts, change nothing

Several `write` lines make several files. A prompt without directives is answered
in words ("Nothing to do."), which is a run that changes nothing.

Conflict resolution: when the newest user text has a line `Conflicted files:`
followed by `- PATH` lines (plait's resolution prompt), the model resolves them by
removing the conflict markers and keeping both sides, unless `leave-conflicts`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = ["Script", "read_script"]

_DIRECTIVE = re.compile(r"^\s*fake:\s*(?P<verb>[a-z0-9-]+)(?:[ \t]+(?P<args>.*?))?\s*$", re.M)
_CONFLICTS = re.compile(r"^Conflicted files:\s*\n((?:[ \t]*- .+\n?)+)", re.M)


@dataclass(frozen=True)
class Script:
    writes: tuple[tuple[str, str], ...] = ()  # (relative path, content)
    fail_status: int | None = None
    hang: bool = False
    resolve: tuple[str, ...] = ()  # conflicted files to resolve, from the newest prompt
    notes: list[str] = field(default_factory=list)  # unknown directives, for debugging

    @property
    def changes_something(self) -> bool:
        return bool(self.writes or self.resolve)


def read_script(all_user_text: str, newest_user_text: str) -> Script:
    """Directives from every user message; conflict resolution only from the newest."""
    writes: list[tuple[str, str]] = []
    fail: int | None = None
    hang = False
    leave = False
    notes: list[str] = []
    for m in _DIRECTIVE.finditer(all_user_text):
        verb, args = m.group("verb"), (m.group("args") or "")
        if verb == "write":
            path, _, content = args.partition(" ")
            writes.append((path, content.replace("\\n", "\n")))
        elif verb == "fail":
            fail = int(args.split()[0])
        elif verb == "hang":
            hang = True
        elif verb == "leave-conflicts":
            leave = True
        elif verb != "nothing":
            notes.append(m.group(0))
    resolve: tuple[str, ...] = ()
    conflicts = _CONFLICTS.search(newest_user_text)
    if conflicts:
        files = [line.strip()[2:].strip() for line in conflicts.group(1).splitlines()]
        resolve = () if leave else tuple(f for f in files if f)
        writes = []  # a resolution turn resolves; it does not redo the task
    return Script(tuple(writes), fail, hang, resolve, notes)


def resolve_shell_command(paths: tuple[str, ...]) -> str:
    """A shell command that removes conflict markers, keeping both sides (for tool-using CLIs)."""
    quoted = " ".join("'" + p.replace("'", "'\\''") + "'" for p in paths)
    return (
        "sed -i -e '/^<<<<<<< /d' -e '/^=======$/d' -e '/^||||||| /d' -e '/^>>>>>>> /d' " + quoted
    )


def write_shell_command(writes: tuple[tuple[str, str], ...]) -> str:
    """A shell command that writes each file (for tool-using CLIs)."""
    parts = []
    for path, content in writes:
        q_path = "'" + path.replace("'", "'\\''") + "'"
        q_content = "'" + content.replace("'", "'\\''") + "'"
        parts.append(f"mkdir -p \"$(dirname {q_path})\" && printf '%s\\n' {q_content} > {q_path}")
    return " && ".join(parts)
