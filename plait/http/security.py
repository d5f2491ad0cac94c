"""The bearer token, and the guard every request passes before it reaches a route.

The guard, in order: the Host header must name this server (DNS rebinding), a request body
may not exceed the limit, a state-changing request must come from this server's own origin
(if the browser says where it comes from) and carry `Authorization: Bearer <token>`.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import platformdirs
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from plait.http.errors import ApiError, error_response
from plait.http.state import AppConfig

TOKEN_ENV = "PLAIT_TOKEN"
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def token_file() -> Path:
    return Path(platformdirs.user_data_dir("plait", appauthor=False)) / "token"


def resolve_token(explicit: str | None = None, path: Path | None = None) -> str:
    """The token: `explicit`, else $PLAIT_TOKEN, else the one kept in the data directory.

    The first start generates it and writes it with mode 0600; later starts reuse it, so a
    dashboard left open keeps working across restarts.
    """
    if explicit:
        return explicit
    if env := os.environ.get(TOKEN_ENV):
        return env
    path = path or token_file()
    try:
        kept = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        kept = ""
    if kept:
        return kept
    token = secrets.token_urlsafe(32)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(token + "\n")
    os.chmod(path, 0o600)
    return token


def host_name(host_header: str) -> str:
    """`example.com:8000` -> `example.com`; `[::1]:8000` -> `[::1]`."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[: host.find("]") + 1] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


class BodyTooLarge(ApiError):
    def __init__(self, limit: int) -> None:
        super().__init__(413, "request_too_large", f"the request body exceeds {limit} bytes")


class GuardMiddleware:
    def __init__(self, app: ASGIApp, config: AppConfig) -> None:
        self.app = app
        self.config = config

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        refusal = self.refusal(scope["method"], headers, scope.get("scheme", "http"))
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        await self.app(scope, self.limited(receive), send)

    def refusal(self, method: str, headers: Headers, scheme: str) -> ASGIApp | None:
        config = self.config
        host = headers.get("host", "")
        if host_name(host) not in config.allowed_hosts:
            return error_response(
                421, "misdirected_request", "this server does not serve that host"
            )
        length = headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > config.max_body):
            return error_response(
                413, "request_too_large", f"the request body exceeds {config.max_body} bytes"
            )
        if method not in STATE_CHANGING:
            return None
        origin = headers.get("origin")
        if origin is not None and origin.lower() != f"{scheme}://{host}".lower():
            return error_response(403, "cross_origin", "cross-site requests are refused")
        if not self.authorised(headers.get("authorization", "")):
            return error_response(
                401,
                "unauthorized",
                "this request needs the header `Authorization: Bearer <token>`",
                headers={"WWW-Authenticate": 'Bearer realm="plait"'},
            )
        return None

    def authorised(self, header: str) -> bool:
        scheme, _, given = header.partition(" ")
        token = self.config.token
        return (
            token is not None
            and scheme.lower() == "bearer"
            and secrets.compare_digest(given.strip().encode(), token.encode())
        )

    def limited(self, receive: Receive) -> Receive:
        limit = self.config.max_body
        seen = 0

        async def receive_limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge(limit)
            return message

        return receive_limited
