"""Read an agent CLI's own account of its session from its output: its verdict, model,
session id, tokens and cost.

An agent's exit status is not its verdict: Claude Code exits 0 with `is_error` or with
refused tool calls, aider exits 0 after an authentication failure. Each preset names its
parser (`AgentPreset.output`); a parser is fed stdout line by line while the agent runs
and keeps only what it needs, so a long session costs no memory.

Every error is the CLI's own human-readable reason, never a tail of raw JSON.
"""

from __future__ import annotations

from plait.execution.runners.agent_formats import FORMATS
from plait.execution.runners.agent_report import AgentReport, OutputParser

__all__ = ["LineFeed", "parser_for"]


def parser_for(output_format: str) -> OutputParser:
    """A fresh parser for an agent preset's output format."""
    return FORMATS[output_format]()


class LineFeed:
    """Hands a parser whole lines out of the chunks a process's output arrives in."""

    def __init__(self, parser: OutputParser, max_line: int = 4 * 1024 * 1024) -> None:
        self.parser = parser
        self._partial: dict[str, str] = {}
        self._max_line = max_line

    def add(self, stream: str, chunk: str) -> str:
        """Feed a chunk; the complete lines in it, rendered for a person."""
        text = self._partial.pop(stream, "") + chunk
        *lines, rest = text.split("\n")
        if len(rest) < self._max_line:  # a runaway line is dropped, not kept growing
            self._partial[stream] = rest
        return "".join(self._line(stream, line) for line in lines)

    def flush(self) -> dict[str, str]:
        """The last, unterminated line of each stream, rendered."""
        rest = {stream: self._line(stream, text) for stream, text in self._partial.items() if text}
        self._partial.clear()
        return {stream: text for stream, text in rest.items() if text}

    def report(self) -> AgentReport:
        self.flush()
        return self.parser.report()

    def _line(self, stream: str, line: str) -> str:
        self.parser.feed(stream, line)
        rendered = self.parser.render(line) if stream == "stdout" else line
        return "" if rendered is None else rendered + "\n"
