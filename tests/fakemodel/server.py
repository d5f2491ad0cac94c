"""The fake provider as a real HTTP server on 127.0.0.1, run in a thread for the tests.

Each provider API lives in its own module and contributes Starlette routes:
`anthropic` (Messages API, for Claude Code), `openai_responses` (Responses API,
for Codex) and `openai_chat` (chat completions, for aider). Every request is
recorded, so a test can check what a CLI sent (the model, the key, the prompt).
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

__all__ = ["FakeModelServer", "RecordedRequest", "Recorder", "running_fake_model"]


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class Recorder:
    requests: list[RecordedRequest] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def record(self, request: Request) -> Any:
        raw = await request.body()
        try:
            body: Any = await request.json() if raw else None
        except ValueError:
            body = raw.decode(errors="replace")
        with self.lock:
            self.requests.append(
                RecordedRequest(
                    request.method,
                    request.url.path,
                    {k.lower(): v for k, v in request.headers.items()},
                    body,
                )
            )
        return body

    def snapshot(self) -> list[RecordedRequest]:
        with self.lock:
            return list(self.requests)


async def hang_forever() -> None:
    """What `fake: hang` does: hold the request open until the client gives up."""
    await asyncio.Event().wait()


def build_app(recorder: Recorder) -> Starlette:
    from tests.fakemodel import anthropic, openai_chat, openai_responses

    async def not_found(request: Request) -> JSONResponse:
        await recorder.record(request)
        return JSONResponse({"error": {"message": f"no route {request.url.path}"}}, 404)

    routes: list[Route] = [
        *anthropic.routes(recorder),
        *openai_responses.routes(recorder),
        *openai_chat.routes(recorder),
        Route("/{path:path}", not_found, methods=["GET", "POST", "PUT", "DELETE", "HEAD"]),
    ]
    return Starlette(routes=routes)


class FakeModelServer:
    """uvicorn serving the fake provider on a free loopback port, in a daemon thread."""

    def __init__(self) -> None:
        self.recorder = Recorder()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self.port: int = self._sock.getsockname()[1]
        config = uvicorn.Config(
            build_app(self.recorder),
            log_level="warning",
            lifespan="off",
            timeout_graceful_shutdown=1,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._thread.start()
        # Wait on the server's own readiness flag, not on a sleep.
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError("the fake model server did not start")
            self._thread.join(0.01)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(10)
        self._sock.close()


@contextmanager
def running_fake_model() -> Iterator[FakeModelServer]:
    server = FakeModelServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


def user_text(messages: list[dict[str, Any]]) -> tuple[str, str]:
    """(all user text, newest user text) from chat-shaped messages, whatever the block shape."""
    texts: list[str] = []
    for message in messages:
        if message.get("role") != "user":
            continue
        text = _text_of(message.get("content"))
        if text:
            texts.append(text)
    return "\n".join(texts), (texts[-1] if texts else "")


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        out = []
        for block in content:
            if isinstance(block, dict) and block.get("type") in ("text", "input_text"):
                out.append(str(block.get("text", "")))
        return "\n".join(out)
    return ""
