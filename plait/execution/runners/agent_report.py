"""What an agent CLI says of its own session (its verdict, model, session id, tokens and
cost), and the shape of a parser that reads it from the CLI's output."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = ["MAX_ERROR", "AgentReport", "OutputParser", "json_line", "optional_int", "short"]

MAX_ERROR = 1000


@dataclass(frozen=True)
class AgentReport:
    error: str = ""  # non-empty: the agent says it failed
    model: str = ""
    session_id: str = ""
    tokens_in: int | None = None
    tokens_out: int | None = None
    cost_usd: float | None = None
    saw_output: bool = False  # a structured report was found at all


class OutputParser(Protocol):
    def feed(self, stream: str, line: str) -> None: ...

    def report(self) -> AgentReport: ...

    def render(self, line: str) -> str | None:
        """The line as a person reads it (None: nothing worth showing). The log file keeps
        the CLI's own output, byte for byte."""
        ...


def json_line(line: str) -> dict[str, Any] | None:
    line = line.strip()
    if not line.startswith("{"):
        return None
    try:
        value = json.loads(line)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def optional_int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_ERROR else text[: MAX_ERROR - 3] + "..."
