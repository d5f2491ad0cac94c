"""The parsers of the agent CLIs' output formats, one per format (`AgentPreset.output`).

An agent's exit status is not its verdict: Claude Code exits 0 with `is_error` or with
refused tool calls, aider exits 0 after an authentication failure. A parser is fed stdout
line by line while the agent runs and keeps only what it needs, so a long session costs
no memory. Every error is the CLI's own human-readable reason, never a tail of raw JSON.
"""

from __future__ import annotations

import re
from typing import Any

from plait.execution.runners.agent_report import (
    AgentReport,
    OutputParser,
    json_line,
    optional_int,
    short,
)


class ClaudeStreamJson:
    """`claude -p --output-format stream-json --verbose`: one JSON message per line; the
    `system`/`init` message names the session and model, the final `result` message holds
    the verdict (`is_error`, `permission_denials`), `total_cost_usd` and `usage`."""

    def __init__(self) -> None:
        self._model = ""
        self._session = ""
        self._result: dict[str, Any] | None = None
        self._api_error = ""

    def feed(self, stream: str, line: str) -> None:
        if stream != "stdout":
            return
        message = json_line(line)
        if message is None:
            return
        kind = message.get("type")
        if kind == "system" and message.get("subtype") == "init":
            self._model = str(message.get("model") or "")
            self._session = str(message.get("session_id") or "")
        elif kind == "result":
            self._result = message
        elif kind == "assistant" and message.get("error"):
            # An API failure is reported as an assistant message before the result.
            self._api_error = _assistant_text(message) or str(message.get("error"))

    def render(self, line: str) -> str | None:
        message = json_line(line)
        if message is None:
            return line
        kind = message.get("type")
        if kind == "system" and message.get("subtype") == "init":
            return f"[claude] session {message.get('session_id')} ({message.get('model')})"
        if kind == "assistant":
            return _assistant_lines(message)
        if kind == "result":
            verdict = "error" if message.get("is_error") else "done"
            return f"[claude] {verdict}: {short(str(message.get('result') or ''))}"
        return None

    def report(self) -> AgentReport:
        result = self._result
        if result is None:
            error = self._api_error or "Claude Code ended without a result message"
            return AgentReport(error=short(error), model=self._model, session_id=self._session)
        usage = result.get("usage") if isinstance(result.get("usage"), dict) else {}
        assert isinstance(usage, dict)
        tokens_in = sum(
            optional_int(usage.get(key)) or 0
            for key in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
        )
        # After --resume, total_cost_usd is the whole session's: this run's is in
        # model_usage_since_last_result (Claude Code 2.1).
        since = result.get("model_usage_since_last_result")
        if isinstance(since, dict) and since:
            costs = [m.get("costUSD") for m in since.values() if isinstance(m, dict)]
            cost: object = sum(c for c in costs if isinstance(c, int | float))
        else:
            cost = result.get("total_cost_usd")
        return AgentReport(
            error=self._verdict(result),
            model=self._model or _first_model(result),
            session_id=str(result.get("session_id") or self._session),
            tokens_in=tokens_in if usage else None,
            tokens_out=optional_int(usage.get("output_tokens")),
            cost_usd=float(cost) if isinstance(cost, int | float) else None,
            saw_output=True,
        )

    def _verdict(self, result: dict[str, Any]) -> str:
        # `subtype` says "success" even for an API error: `is_error` is the verdict.
        if result.get("is_error") or result.get("subtype") not in (None, "success"):
            text = str(result.get("result") or "") or self._api_error or "no reason given"
            status = result.get("api_error_status")
            http = f" (HTTP {status})" if isinstance(status, int) else ""
            return short(f"Claude Code failed: {text}{http}")
        denials = result.get("permission_denials") or []
        if isinstance(denials, list) and denials:
            refused = ", ".join(_denial(d) for d in denials[:5])
            more = f" and {len(denials) - 5} more" if len(denials) > 5 else ""
            return short(f"Claude Code was refused {len(denials)} tool call(s): {refused}{more}")
        return ""


def _assistant_text(message: dict[str, Any]) -> str:
    body = message.get("message")
    content = body.get("content") if isinstance(body, dict) else None
    if not isinstance(content, list):
        return ""
    texts = [str(b.get("text", "")) for b in content if isinstance(b, dict)]
    return " ".join(t for t in texts if t)


def _assistant_lines(message: dict[str, Any]) -> str | None:
    body = message.get("message")
    content = body.get("content") if isinstance(body, dict) else None
    if not isinstance(content, list):
        return None
    shown = []
    for block in content:
        if not isinstance(block, dict):
            continue
        if block.get("type") == "text" and block.get("text"):
            shown.append(str(block["text"]))
        elif block.get("type") == "tool_use":
            arguments = block.get("input")
            target = ""
            if isinstance(arguments, dict):
                target = str(arguments.get("command") or arguments.get("file_path") or "")
            shown.append(f"-> {block.get('name')}: {short(target)}".rstrip(": "))
    return "\n".join(shown) or None


def _first_model(result: dict[str, Any]) -> str:
    usage = result.get("modelUsage")
    return next(iter(usage), "") if isinstance(usage, dict) else ""


def _denial(denial: object) -> str:
    if not isinstance(denial, dict):
        return str(denial)
    tool = str(denial.get("tool_name") or "a tool")
    arguments = denial.get("tool_input")
    target = ""
    if isinstance(arguments, dict):
        target = str(arguments.get("file_path") or arguments.get("command") or "")
    return f"{tool}({target})" if target else tool


class CodexJsonEvents:
    """`codex exec --json`: one event per line. `thread.started` names the session,
    `turn.completed` carries the usage, `turn.failed` the verdict. Top-level `error` events
    also say "Reconnecting... 1/5 (...)" while it retries: only the last one counts, and
    only when no turn completed after it."""

    def __init__(self) -> None:
        self._session = ""
        self._tokens_in: int | None = None
        self._tokens_out: int | None = None
        self._failed = ""
        self._last_error = ""
        self._completed = False
        self._saw = False

    def feed(self, stream: str, line: str) -> None:
        if stream != "stdout":
            return
        event = json_line(line)
        if event is None:
            return
        self._saw = True
        kind = event.get("type")
        if kind == "thread.started":
            self._session = str(event.get("thread_id") or "")
        elif kind == "turn.completed":
            self._completed, self._last_error = True, ""
            usage = event.get("usage")
            if isinstance(usage, dict):
                self._tokens_in = (self._tokens_in or 0) + (
                    optional_int(usage.get("input_tokens")) or 0
                )
                out = optional_int(usage.get("output_tokens")) or 0
                self._tokens_out = (self._tokens_out or 0) + out
        elif kind == "turn.failed":
            error = event.get("error")
            message = error.get("message") if isinstance(error, dict) else error
            self._failed = str(message or "the turn failed")
        elif kind == "error":
            self._last_error = str(event.get("message") or "error")

    def render(self, line: str) -> str | None:
        event = json_line(line)
        if event is None:
            return line
        kind = event.get("type")
        item = event.get("item") if isinstance(event.get("item"), dict) else {}
        assert isinstance(item, dict)
        if kind == "thread.started":
            return f"[codex] session {event.get('thread_id')}"
        if kind == "item.completed" and item.get("type") == "agent_message":
            return str(item.get("text") or "") or None
        if kind == "item.completed" and item.get("type") == "command_execution":
            return f"$ {item.get('command')} (exit {item.get('exit_code')})"
        if kind == "turn.failed":
            return f"[codex] failed: {self._failed}"
        if kind == "error":
            return f"[codex] {event.get('message')}"
        return None

    def report(self) -> AgentReport:
        error = self._failed or self._last_error
        if not error and self._saw and not self._completed:
            error = "it ended without completing its turn"
        return AgentReport(
            error=short(f"Codex failed: {error}") if error else "",
            session_id=self._session,
            tokens_in=self._tokens_in,
            tokens_out=self._tokens_out,
            saw_output=self._saw,
        )


# aider prints a line per exchange: "Tokens: 2.3k sent, 120 received. Cost: $0.01 message,
# $0.02 session." Its failures are printed, and it exits 0 anyway.
_AIDER_TOKENS = re.compile(
    r"Tokens: (?P<sent>[\d.,]+)(?P<sk>[km]?) sent(?:, [\d.,]+[km]? cache \w+)*,"
    r" (?P<recv>[\d.,]+)(?P<rk>[km]?) received\."
    r"(?: Cost: \$(?P<msg>[\d.,]+) message, \$(?P<session>[\d.,]+) session\.)?"
)
_AIDER_ERRORS = (
    re.compile(r"^(litellm\.\w+: .*)$"),
    re.compile(r"^(The API provider is not able to authenticate you.*)$"),
    re.compile(r"^(The API provider's servers are down or overloaded.*)$"),
    re.compile(r"^(The API provider has rate limited you.*)$"),
    re.compile(r"^(Model .* has hit a token limit.*)$"),
    re.compile(r"^(Error: .*)$"),
)
_AIDER_MODEL = re.compile(r"^(?:Main model|Model): (\S+)")


def _aider_count(number: str, suffix: str) -> int:
    value = float(number.replace(",", ""))
    return int(value * {"": 1, "k": 1000, "m": 1_000_000}[suffix])


class AiderText:
    """aider's plain-text output: its token and cost lines, its model, its errors. aider
    retries a failed request (a 500, a timeout) and may then succeed: an error counts only
    when no reply (a token line) came after it."""

    def __init__(self) -> None:
        self._tokens_in = 0
        self._tokens_out = 0
        self._cost: float | None = None
        self._error = ""
        self._model = ""
        self._saw = False

    def feed(self, stream: str, line: str) -> None:
        line = line.strip()
        tokens = _AIDER_TOKENS.search(line)
        if tokens:
            self._saw, self._error = True, ""
            self._tokens_in += _aider_count(tokens["sent"], tokens["sk"])
            self._tokens_out += _aider_count(tokens["recv"], tokens["rk"])
            if tokens["session"]:
                self._cost = float(tokens["session"].replace(",", ""))
            return
        model = _AIDER_MODEL.match(line)
        if model and not self._model:
            self._model = model.group(1)
            return
        for pattern in _AIDER_ERRORS:
            found = pattern.match(line)
            if found:
                self._error = found.group(1)
                return

    def render(self, line: str) -> str | None:
        return line

    def report(self) -> AgentReport:
        return AgentReport(
            error=short(f"aider reported an error: {self._error}") if self._error else "",
            model=self._model,
            tokens_in=self._tokens_in if self._saw else None,
            tokens_out=self._tokens_out if self._saw else None,
            cost_usd=self._cost,
            saw_output=self._saw,
        )


FORMATS: dict[str, type[OutputParser]] = {
    "claude-stream-json": ClaudeStreamJson,
    "codex-jsonl": CodexJsonEvents,
    "aider-text": AiderText,
}
