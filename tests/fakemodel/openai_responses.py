"""The OpenAI Responses API as `codex exec` uses it: `POST /v1/responses`, streamed as SSE.

A turn request carries the whole conversation in `input` (developer and user messages,
the model's earlier function calls and their outputs). The fake answers it from the
directives in the user messages (see `script.py`):

- writes or conflicts to resolve: one function call of the request's shell tool
  (`exec_command {"cmd": ...}` in codex 0.17x; `shell` and `shell_command` are
  understood too) running the command that does it;
- once the newest input is that call's output: a final message, "Done.";
- otherwise a message in words.

`fake: fail 401` answers with OpenAI's invalid-key error, `fake: fail 500` with a
server error every time, `fake: hang` never answers. A side request (a compaction,
a title, anything that is not a turn with a shell tool) is answered in words and
never writes.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.fakemodel.script import Script, read_script, resolve_shell_command, write_shell_command
from tests.fakemodel.server import Recorder, hang_forever

__all__ = ["DONE_TEXT", "NOTHING_TEXT", "conversation_text", "routes"]

DONE_TEXT = "Done."
NOTHING_TEXT = "Nothing to do."

INVALID_KEY_ERROR: dict[str, Any] = {
    "error": {
        "message": "Incorrect API key provided",
        "type": "invalid_request_error",
        "param": None,
        "code": "invalid_api_key",
    }
}
SERVER_ERROR: dict[str, Any] = {
    "error": {
        "message": "The server had an error while processing your request.",
        "type": "server_error",
        "param": None,
        "code": None,
    }
}

_ids = itertools.count(1)


def routes(recorder: Recorder) -> list[Route]:
    async def responses(request: Request) -> Response:
        body = await recorder.record(request)
        return await _answer(request, body if isinstance(body, dict) else {})

    return [Route("/v1/responses", responses, methods=["POST"])]


def conversation_text(items: list[Any]) -> tuple[str, str, bool]:
    """(all user text, newest user text, whether a function call output came after it).

    Responses `input` items: `{"type": "message", "role": "user", "content":
    [{"type": "input_text", "text": ...}]}` (content may be a plain string too),
    `{"type": "function_call", ...}`, `{"type": "function_call_output", "call_id",
    "output"}`, and codex's own developer messages, which are not the user's.
    """
    texts: list[str] = []
    output_since_newest = False
    for item in items:
        if not isinstance(item, dict):
            continue
        kind = item.get("type", "message")
        if kind == "message" and item.get("role") == "user":
            text = _content_text(item.get("content"))
            if text:
                texts.append(text)
                output_since_newest = False
        elif kind in ("function_call_output", "custom_tool_call_output", "local_shell_call_output"):
            output_since_newest = True
    return "\n".join(texts), (texts[-1] if texts else ""), output_since_newest


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            str(part.get("text", ""))
            for part in content
            if isinstance(part, dict) and part.get("type") in ("input_text", "text")
        )
    return ""


async def _answer(request: Request, body: dict[str, Any]) -> Response:
    items = body.get("input")
    if isinstance(items, str):
        items = [{"type": "message", "role": "user", "content": items}]
    if not isinstance(items, list):
        items = []
    all_text, newest, answered = conversation_text(items)
    script = read_script(all_text, newest)

    if script.hang:
        await _hang_until_the_client_leaves(request)
        return Response(status_code=499)  # nobody is there to read it
    if script.fail_status == 401:
        return JSONResponse(INVALID_KEY_ERROR, 401)
    if script.fail_status is not None:
        return JSONResponse(SERVER_ERROR, script.fail_status)

    model = str(body.get("model") or "fake-model")
    tool = _shell_tool(body.get("tools"))
    if answered:
        output = [_message(DONE_TEXT)]
    elif script.changes_something and tool is not None and _is_turn(request):
        output = [_shell_call(tool, _command(script))]
    else:
        output = [_message(DONE_TEXT if script.changes_something else NOTHING_TEXT)]
    return StreamingResponse(
        _stream(model, output, len(json.dumps(body))),
        media_type="text/event-stream",
        headers={"cache-control": "no-cache"},
    )


async def _hang_until_the_client_leaves(request: Request) -> None:
    """`hang_forever`, but let go once codex has gone, so no handler outlives its client."""

    async def client_left() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass

    waits = {asyncio.ensure_future(hang_forever()), asyncio.ensure_future(client_left())}
    _, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()


def _is_turn(request: Request) -> bool:
    """Codex labels each request in `x-codex-turn-metadata`; only a turn may act."""
    raw = request.headers.get("x-codex-turn-metadata")
    if not raw:
        return True
    try:
        kind = json.loads(raw).get("request_kind")
    except (ValueError, AttributeError):
        return True
    return kind in (None, "turn")


def _shell_tool(tools: Any) -> str | None:
    names = (
        {t.get("name") for t in tools if isinstance(t, dict)} if isinstance(tools, list) else set()
    )
    for name in ("exec_command", "shell_command", "shell"):
        if name in names:
            return name
    return None


def _command(script: Script) -> str:
    return (
        resolve_shell_command(script.resolve)
        if script.resolve
        else write_shell_command(script.writes)
    )


def _shell_call(tool: str, command: str) -> dict[str, Any]:
    arguments: dict[str, Any]
    if tool == "exec_command":
        arguments = {"cmd": command}
    elif tool == "shell_command":
        arguments = {"command": command}
    else:
        arguments = {"command": ["bash", "-lc", command]}
    n = next(_ids)
    return {
        "type": "function_call",
        "id": f"fc_fake{n}",
        "call_id": f"call_fake{n}",
        "name": tool,
        "arguments": json.dumps(arguments),
        "status": "completed",
    }


def _message(text: str) -> dict[str, Any]:
    return {
        "type": "message",
        "id": f"msg_fake{next(_ids)}",
        "role": "assistant",
        "status": "completed",
        "content": [{"type": "output_text", "text": text, "annotations": []}],
    }


async def _stream(
    model: str, output: list[dict[str, Any]], request_chars: int
) -> AsyncIterator[str]:
    response_id = f"resp_fake{next(_ids)}"
    seq = itertools.count()

    def event(kind: str, **fields: Any) -> str:
        data = {"type": kind, "sequence_number": next(seq), **fields}
        return f"event: {kind}\ndata: {json.dumps(data)}\n\n"

    shell: dict[str, Any] = {"id": response_id, "object": "response", "model": model}
    yield event("response.created", response={**shell, "status": "in_progress", "output": []})
    for index, item in enumerate(output):
        if item["type"] == "message":
            text = item["content"][0]["text"]
            yield event(
                "response.output_item.added",
                output_index=index,
                item={**item, "status": "in_progress", "content": []},
            )
            part = {"type": "output_text", "text": "", "annotations": []}
            where = {"item_id": item["id"], "output_index": index, "content_index": 0}
            yield event("response.content_part.added", **where, part=part)
            yield event("response.output_text.delta", **where, delta=text)
            yield event("response.output_text.done", **where, text=text)
            yield event("response.content_part.done", **where, part={**part, "text": text})
        else:
            yield event(
                "response.output_item.added",
                output_index=index,
                item={**item, "status": "in_progress", "arguments": ""},
            )
            yield event(
                "response.function_call_arguments.delta",
                item_id=item["id"],
                output_index=index,
                delta=item["arguments"],
            )
            yield event(
                "response.function_call_arguments.done",
                item_id=item["id"],
                output_index=index,
                arguments=item["arguments"],
            )
        yield event("response.output_item.done", output_index=index, item=item)
    input_tokens = max(1, request_chars // 4)
    output_tokens = 10 * len(output)
    usage = {
        "input_tokens": input_tokens,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": input_tokens + output_tokens,
    }
    yield event(
        "response.completed",
        response={**shell, "status": "completed", "output": output, "usage": usage},
    )
