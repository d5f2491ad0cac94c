"""The bearer token, and the guard every request passes before it reaches a route.

The guard, in order: the Host header must name this server (DNS rebinding), a request body
may not exceed the limit, a state-changing request must come from this server's own origin
(if the browser says where it comes from), and every request but a read of an open path
(`AppConfig.open_paths`: /healthz and /metrics) must be authenticated, by
`Authorization: Bearer <token>` or by the dashboard's cookie.

The dashboard's address ends in `/?token=<token>`: the guard answers it with a redirect to `/`
that sets the cookie (HttpOnly, SameSite=Strict) and drops the query, so the page's own
requests and its EventSource (which cannot send headers) authenticate by cookie and the
token stays out of the page, its history and the access log (see `redact`). The cookie holds
a digest of the token, not the token: it works only as a cookie, and only while the token
stays the same. A state-changing request on the cookie alone must say its Origin (browsers
do), so a form or script of another site cannot use it.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
import secrets
from pathlib import Path
from urllib.parse import parse_qs

import platformdirs
from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from plait.http.errors import ApiError, error_response
from plait.http.state import AppConfig

TOKEN_ENV = "PLAIT_TOKEN"
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
COOKIE = "plait_session"
UNAUTHORIZED = (
    "this request needs the header `Authorization: Bearer <token>`, or the dashboard's "
    "cookie: open the address `plait serve` printed (it ends in /?token=...)"
)
_TOKEN_IN_QUERY = re.compile(r"(?i)([?&]token=)[^&#\s]*")


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
        refusal = self.refusal(scope, headers)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        await self.app(scope, self.limited(receive), send)

    def refusal(self, scope: Scope, headers: Headers) -> ASGIApp | None:
        """The answer instead of the route's, or None to let the request through."""
        config = self.config
        method: str = scope["method"]
        scheme: str = scope.get("scheme", "http")
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
        bearer = self.authorised(headers.get("authorization", ""))
        cookie = self.has_cookie(headers)
        if method not in STATE_CHANGING:
            if method == "GET" and scope["path"] == "/" and scope.get("query_string"):
                exchange = self.exchange(scope["query_string"], scheme)
                if exchange is not None:
                    return exchange
            if scope["path"] in config.open_paths or bearer or cookie:
                return None
            return unauthorized()
        origin = headers.get("origin")
        if origin is not None and origin.lower() != f"{scheme}://{host}".lower():
            return error_response(403, "cross_origin", "cross-site requests are refused")
        if bearer or (cookie and origin is not None):
            return None
        return unauthorized()

    def authorised(self, header: str) -> bool:
        scheme, _, given = header.partition(" ")
        token = self.config.token
        return (
            token is not None
            and scheme.lower() == "bearer"
            and secrets.compare_digest(given.strip().encode(), token.encode())
        )

    def has_cookie(self, headers: Headers) -> bool:
        token = self.config.token
        if token is None:
            return False
        given = _cookie(headers.get("cookie", ""), COOKIE)
        return given is not None and secrets.compare_digest(
            given.encode(), cookie_value(token).encode()
        )

    def exchange(self, query_string: bytes, scheme: str) -> ASGIApp | None:
        """`/?token=<token>`: a redirect to `/` that sets the cookie; a wrong token: 401."""
        given = parse_qs(query_string.decode("latin-1")).get("token")
        if not given:
            return None
        token = self.config.token
        if token is None or not secrets.compare_digest(given[-1].encode(), token.encode()):
            return unauthorized()
        response = Response(status_code=303, headers={"Location": "/", "Cache-Control": "no-store"})
        response.set_cookie(
            COOKIE,
            cookie_value(token),
            httponly=True,
            samesite="strict",
            secure=scheme == "https",
            path="/",
        )
        return response

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


def unauthorized() -> ASGIApp:
    return error_response(
        401, "unauthorized", UNAUTHORIZED, headers={"WWW-Authenticate": 'Bearer realm="plait"'}
    )


def cookie_value(token: str) -> str:
    """What the dashboard's cookie holds: a digest of the token, never the token itself."""
    return hmac.new(token.encode(), b"plait dashboard cookie", hashlib.sha256).hexdigest()


def _cookie(header: str, name: str) -> str | None:
    for part in header.split(";"):
        key, sep, value = part.strip().partition("=")
        if sep and key == name:
            return value.strip()
    return None


def redact(text: str) -> str:
    """`/?token=abc&x=1` -> `/?token=[redacted]&x=1`."""
    return _TOKEN_IN_QUERY.sub(r"\1[redacted]", text)


class RedactTokens(logging.Filter):
    """Keeps a `?token=` out of the log: uvicorn's access log shows each request line."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        return True


def redact_logs(*names: str) -> None:
    """Put RedactTokens on these loggers (once each)."""
    for name in names:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactTokens) for f in logger.filters):
            logger.addFilter(RedactTokens())
