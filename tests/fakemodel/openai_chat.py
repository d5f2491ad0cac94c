"""OpenAI chat completions, as aider (through litellm and the openai SDK) calls them.

Routes: `POST /v1/chat/completions` (non-streaming JSON, or SSE chunks ending in
`data: [DONE]` when `stream` is true, with a usage chunk when
`stream_options.include_usage` asks for one, as OpenAI does) and `GET /v1/models`.
Both also answer without the `/v1` prefix, for a base URL given without it.

aider uses no tools: it applies edits that it finds in the reply's text, in the edit
format named in its system prompt. The fake model answers in that format:

- `whole` (aider's default for `openai/gpt-4o-mini`): a *file listing*, the path on
  a line of its own, then the whole new content between fences.
- `diff` (SEARCH/REPLACE blocks): an empty SEARCH creates the file. For a file whose
  content is in the chat (added with `--file`), SEARCH is that whole content, so the
  file is overwritten rather than appended to.

Conflict resolution (`Conflicted files:` in the newest prompt) takes each file's
content from the chat (plait passes the conflicted files with `--file`) and answers
with the markers removed, both sides kept. That works in `whole` format only: aider's
SEARCH/REPLACE parser takes any `=======` line for its own divider, so a SEARCH section
cannot hold a conflict's divider and the diff format cannot delete one. In `diff`
format the fake model says so and changes nothing, which is what a real model's
attempt would come to.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.fakemodel.script import Script, read_script
from tests.fakemodel.server import Recorder, hang_forever, user_text

__all__ = ["conflicts_resolved", "file_listings", "reply_text", "routes"]

MODELS = ("gpt-4o-mini", "gpt-4o", "gpt-4.1-mini")

_WHOLE_FENCE = re.compile(r"^- Second line: opening (?P<fence>\S+)\s*$", re.M)
_DIFF_FENCE = re.compile(
    r"The opening fence and code language, eg: (?P<fence>\S+?)python\s*$", re.M
)
_FENCES = {"```": "```", "````": "````"} | {
    f"<{name}>": f"</{name}>" for name in ("source", "code", "pre", "codeblock", "sourcecode")
}
_MARKER = re.compile(r"^(<<<<<<< |\|\|\|\|\|\|\| |>>>>>>> )|^=======$")


def routes(recorder: Recorder) -> list[Route]:
    async def chat_completions(request: Request) -> Response:
        body = await recorder.record(request)
        if not isinstance(body, dict):
            return _error(
                400, "We could not parse the JSON body of your request.", "invalid_request_error"
            )
        messages: list[dict[str, Any]] = list(body.get("messages") or [])
        script = read_script(*user_text(messages))
        if script.fail_status == 401:
            key = request.headers.get("authorization", "").removeprefix("Bearer ")
            return _error(
                401,
                f"Incorrect API key provided: {_redact(key)}. You can find your API key at"
                " https://platform.openai.com/account/api-keys.",
                "invalid_request_error",
                code="invalid_api_key",
            )
        if script.fail_status is not None:
            return _error(
                script.fail_status,
                "The server had an error while processing your request. Sorry about that!",
                "server_error",
            )
        if script.hang:
            await hang_forever()
        model = str(body.get("model") or MODELS[0])
        text = reply_text(script, messages)
        usage = {
            "prompt_tokens": _tokens(json.dumps(messages)),
            "completion_tokens": _tokens(text),
        }
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        completion_id = "chatcmpl-" + uuid.uuid4().hex[:24]
        if body.get("stream"):
            options = body.get("stream_options") or {}
            with_usage = bool(isinstance(options, dict) and options.get("include_usage"))
            return StreamingResponse(
                _chunks(completion_id, model, text, usage if with_usage else None),
                media_type="text/event-stream",
            )
        return JSONResponse(
            {
                "id": completion_id,
                "object": "chat.completion",
                "created": int(time.time()),
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": text, "refusal": None},
                        "logprobs": None,
                        "finish_reason": "stop",
                    }
                ],
                "usage": usage,
                "system_fingerprint": "fp_fake",
            }
        )

    async def models(request: Request) -> Response:
        await recorder.record(request)
        return JSONResponse(
            {
                "object": "list",
                "data": [
                    {"id": m, "object": "model", "created": 1700000000, "owned_by": "fake"}
                    for m in MODELS
                ],
            }
        )

    out: list[Route] = []
    for prefix in ("/v1", ""):
        out.append(Route(prefix + "/chat/completions", chat_completions, methods=["POST"]))
        out.append(Route(prefix + "/models", models, methods=["GET"]))
    return out


def reply_text(script: Script, messages: list[dict[str, Any]]) -> str:
    """The assistant's reply for aider: prose, plus edits in the edit format aider asked for."""
    prompt = "\n".join(_text(m.get("content")) for m in messages)
    diff = "<<<<<<< SEARCH" in prompt and "*file listing*" not in prompt
    fence = _fence(prompt, diff)
    in_chat = file_listings(messages)
    if script.resolve:
        if diff:
            return (
                "I cannot resolve these conflicts with SEARCH/REPLACE blocks: a SEARCH section"
                " cannot contain the `=======` line. Nothing changed."
            )
        missing = [p for p in script.resolve if p not in in_chat]
        edits = [(p, conflicts_resolved(in_chat[p])) for p in script.resolve if p in in_chat]
        words = "I resolved the conflicts, keeping both sides."
        if missing:
            words += " These files are not in the chat, so I left them: " + ", ".join(missing) + "."
        return words + "\n\n" + "".join(_whole(p, c, fence) for p, c in edits)
    if not script.writes:
        return "Nothing to do."
    writes = [
        (path, content if content.endswith("\n") else content + "\n")
        for path, content in script.writes
    ]
    if diff:
        blocks = "".join(_search_replace(p, in_chat.get(p, ""), c, fence) for p, c in writes)
        return "I will write the files.\n\n" + blocks
    return "I will write the files.\n\n" + "".join(_whole(p, c, fence) for p, c in writes)


def file_listings(messages: list[dict[str, Any]]) -> dict[str, str]:
    """Files aider put in the chat: a path line, an opening fence, the content, a closing fence."""
    found: dict[str, str] = {}
    for message in messages:
        if message.get("role") != "user":
            continue
        lines = _text(message.get("content")).splitlines(keepends=True)
        i = 1
        while i < len(lines):
            opening = lines[i].rstrip("\n")
            closing = _FENCES.get(opening)
            path = lines[i - 1].strip()
            if closing is None or not path or " " in path:
                i += 1
                continue
            end = i + 1
            while end < len(lines) and lines[end].rstrip("\n") != closing:
                end += 1
            if end >= len(lines):
                break
            found.setdefault(path, "".join(lines[i + 1 : end]))
            i = end + 2
    return found


def conflicts_resolved(content: str) -> str:
    """The content without git's conflict markers, both sides kept (as the `sed` does)."""
    lines = content.splitlines(keepends=True)
    return "".join(line for line in lines if not _MARKER.match(line.rstrip("\n")))


def _whole(path: str, content: str, fence: tuple[str, str]) -> str:
    body = content if not content or content.endswith("\n") else content + "\n"
    return f"{path}\n{fence[0]}\n{body}{fence[1]}\n\n"


def _search_replace(path: str, old: str, new: str, fence: tuple[str, str]) -> str:
    return f"{path}\n{fence[0]}\n<<<<<<< SEARCH\n{old}=======\n{new}>>>>>>> REPLACE\n{fence[1]}\n\n"


def _fence(prompt: str, diff: bool) -> tuple[str, str]:
    m = (_DIFF_FENCE if diff else _WHOLE_FENCE).search(prompt)
    opening = m.group("fence") if m else "```"
    return opening, _FENCES.get(opening, opening)


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            str(block.get("text", ""))
            for block in content
            if isinstance(block, dict) and block.get("type") == "text"
        )
    return ""


def _tokens(text: str) -> int:
    return max(1, len(text) // 4)


def _redact(key: str) -> str:
    return key[:3] + "*" * max(0, len(key) - 7) + key[-4:] if len(key) > 8 else "****"


def _error(status: int, message: str, kind: str, code: str | None = None) -> JSONResponse:
    return JSONResponse(
        {"error": {"message": message, "type": kind, "param": None, "code": code}}, status
    )


async def _chunks(
    completion_id: str, model: str, text: str, usage: dict[str, int] | None
) -> AsyncIterator[str]:
    created = int(time.time())

    def chunk(choices: list[dict[str, Any]], **extra: Any) -> str:
        payload = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "system_fingerprint": "fp_fake",
            "choices": choices,
            **extra,
        }
        return "data: " + json.dumps(payload) + "\n\n"

    yield chunk(
        [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]
    )
    for piece in re.findall(r".{1,40}", text, re.S):
        yield chunk([{"index": 0, "delta": {"content": piece}, "finish_reason": None}])
    yield chunk([{"index": 0, "delta": {}, "finish_reason": "stop"}])
    if usage is not None:
        yield chunk([], usage=usage)
    yield "data: [DONE]\n\n"
