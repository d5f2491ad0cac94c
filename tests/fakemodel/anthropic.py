"""The Anthropic Messages API, as Claude Code uses it.

Claude Code posts `POST /v1/messages?beta=true`, usually with `"stream": true` (server-sent
events), and falls back to a non-streaming request (plain JSON) when a stream fails. What the
fake answers:

- the script says `fail N`: HTTP N with Anthropic's error body, every time;
- the script says `hang`: nothing, ever: the request is held open until the client gives up
  (then the handler ends, so the server's shutdown has no hung task to cancel);
- the newest user message carries a `tool_result`: the final words "Done." (`end_turn`), or
  "The command failed: REASON" when Claude Code reports the tool call as an error (a denied
  permission, a failing command), so a test's `result` says why nothing changed;
- the script changes something and the request offers the `Bash` tool: one `tool_use` of
  `Bash` running the shell command that writes (or resolves) the files (`tool_use`);
- anything else: words only ("Nothing to do.", `end_turn`).

Only a request that offers the `Bash` tool may act: that is the agent's main loop. Claude
Code's side requests (a session title, a topic, a summary; often on a small model) carry no
tools, so they are answered in words and never run the writes, whatever their prompt quotes.
(Claude Code 2.1.332 in `-p` mode made no side request at all in these tests; the rule is
there for versions and modes that do.)

`HEAD /api/hello` is Claude Code's connectivity check at startup (sent unless
CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC is set); it gets a 200 so it is not a 404 in the log.
Claude Code 2.1.332 called nothing else on the base URL (no `count_tokens`) in `-p` mode.

`usage` is realistic (about four characters a token, the system prompt written to the prompt
cache on a conversation's first request and read from it afterwards) and the reply names the
model that was asked for, so Claude Code prices the call and `total_cost_usd` is above zero.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.fakemodel.script import (
    Script,
    read_script,
    resolve_shell_command,
    write_shell_command,
)
from tests.fakemodel.server import Recorder, user_text

__all__ = ["DEFAULT_MODEL", "routes"]

DEFAULT_MODEL = "claude-sonnet-4-5"
BASH_TOOL = "Bash"

_ERRORS = {
    400: ("invalid_request_error", "invalid request"),
    401: ("authentication_error", "invalid x-api-key"),
    403: (
        "permission_error",
        "your API key does not have permission to use the specified resource",
    ),
    404: ("not_found_error", "not found"),
    413: ("request_too_large", "request exceeds the maximum allowed number of bytes"),
    429: ("rate_limit_error", "rate limited"),
    500: ("api_error", "Internal server error"),
    529: ("overloaded_error", "Overloaded"),
}


def error_body(status: int) -> dict[str, Any]:
    kind, message = _ERRORS.get(status, ("api_error", f"fake failure {status}"))
    return {"type": "error", "error": {"type": kind, "message": message}}


def _tokens(value: Any) -> int:
    """About four characters a token, at least one."""
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    return max(1, len(text) // 4)


def _newest_tool_results(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The `tool_result` blocks of the newest message, if it is the user's."""
    if not messages or messages[-1].get("role") != "user":
        return []
    content = messages[-1].get("content")
    if not isinstance(content, list):
        return []
    return [b for b in content if isinstance(b, dict) and b.get("type") == "tool_result"]


def _result_text(block: dict[str, Any]) -> str:
    content = block.get("content")
    if isinstance(content, list):
        return " ".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return str(content or "")


def _offers_bash(body: dict[str, Any]) -> bool:
    tools = body.get("tools") or []
    return any(isinstance(tool, dict) and tool.get("name") == BASH_TOOL for tool in tools)


def _command(script: Script) -> str:
    if script.resolve:
        return resolve_shell_command(script.resolve)
    return write_shell_command(script.writes)


def reply_content(body: dict[str, Any], script: Script) -> tuple[list[dict[str, Any]], str]:
    """The assistant's content blocks and stop reason for one request."""
    messages: list[dict[str, Any]] = body.get("messages") or []
    results = _newest_tool_results(messages)
    if results:
        failed = [_result_text(r) for r in results if r.get("is_error")]
        text = "The command failed: " + "; ".join(failed) if failed else "Done."
        return [{"type": "text", "text": text}], "end_turn"
    if script.changes_something and _offers_bash(body):
        command = _command(script)
        what = "Resolve the conflicts" if script.resolve else "Write the files"
        tool_use = {
            "type": "tool_use",
            "id": "toolu_" + uuid.uuid4().hex[:24],
            "name": BASH_TOOL,
            "input": {"command": command, "description": what},
        }
        return [{"type": "text", "text": what + "."}, tool_use], "tool_use"
    return [{"type": "text", "text": "Nothing to do."}], "end_turn"


def usage_for(body: dict[str, Any], content: list[dict[str, Any]]) -> dict[str, Any]:
    system_tokens = _tokens(body.get("system") or "") + _tokens(body.get("tools") or [])
    rest = _tokens(body.get("messages") or [])
    first = not any(m.get("role") == "assistant" for m in body.get("messages") or [])
    return {
        "input_tokens": rest,
        "cache_creation_input_tokens": system_tokens if first else 0,
        "cache_read_input_tokens": 0 if first else system_tokens,
        "cache_creation": {
            "ephemeral_5m_input_tokens": system_tokens if first else 0,
            "ephemeral_1h_input_tokens": 0,
        },
        "output_tokens": _tokens(content) + 8,
        "service_tier": "standard",
    }


def _message(
    body: dict[str, Any], content: list[dict[str, Any]], stop_reason: str
) -> dict[str, Any]:
    return {
        "id": "msg_" + uuid.uuid4().hex[:24],
        "type": "message",
        "role": "assistant",
        "model": body.get("model") or DEFAULT_MODEL,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": usage_for(body, content),
    }


def _sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


async def stream_events(message: dict[str, Any]) -> AsyncIterator[bytes]:
    """The message as Anthropic streams it: start, each block in deltas, delta, stop."""
    usage = message["usage"]
    start = {**message, "content": [], "stop_reason": None, "usage": {**usage, "output_tokens": 1}}
    yield _sse("message_start", {"type": "message_start", "message": start})
    yield _sse("ping", {"type": "ping"})
    for index, block in enumerate(message["content"]):
        if block["type"] == "tool_use":
            opening = {**block, "input": {}}
            delta = {"type": "input_json_delta", "partial_json": json.dumps(block["input"])}
        else:
            opening = {"type": "text", "text": ""}
            delta = {"type": "text_delta", "text": block["text"]}
        yield _sse(
            "content_block_start",
            {"type": "content_block_start", "index": index, "content_block": opening},
        )
        yield _sse(
            "content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}
        )
        yield _sse("content_block_stop", {"type": "content_block_stop", "index": index})
    yield _sse(
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
            "usage": usage,
        },
    )
    yield _sse("message_stop", {"type": "message_stop"})


async def _hold_until_the_client_leaves(request: Request) -> None:
    """`server.hang_forever`, except that it ends when the client closes the connection.

    Claude Code gives up after API_TIMEOUT_MS; `hang_forever` would then stay pending until the
    server stops, which waits out its graceful timeout and logs a traceback for each one.
    Once the body is read, the next ASGI message is `http.disconnect`, sent when the client
    goes away: waiting for it is the hang.
    """
    while (await request.receive())["type"] != "http.disconnect":
        pass


def routes(recorder: Recorder) -> list[Route]:
    async def messages(request: Request) -> Response:
        body = await recorder.record(request)
        if not isinstance(body, dict):
            return JSONResponse(error_body(400), 400)
        script = read_script(*user_text(body.get("messages") or []))
        if script.fail_status is not None:
            return JSONResponse(error_body(script.fail_status), script.fail_status)
        if script.hang:
            await _hold_until_the_client_leaves(request)
            return Response(status_code=499)  # nobody is there to read it
        content, stop_reason = reply_content(body, script)
        message = _message(body, content, stop_reason)
        headers = {"request-id": "req_" + uuid.uuid4().hex[:24]}
        if body.get("stream"):
            return StreamingResponse(
                stream_events(message), media_type="text/event-stream", headers=headers
            )
        return JSONResponse(message, headers=headers)

    async def hello(request: Request) -> Response:
        """Claude Code's connectivity check (`HEAD /api/hello`) at startup."""
        await recorder.record(request)
        return Response(status_code=200)

    return [
        Route("/v1/messages", messages, methods=["POST"]),
        Route("/api/hello", hello, methods=["GET", "HEAD"]),
    ]
