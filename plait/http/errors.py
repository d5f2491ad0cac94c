"""Every error the HTTP layer answers, in one place: `{"error": {"code", "message", ...}}`.

Application, domain and store errors map to statuses here and nowhere else; a handler never
catches them itself. Anything unexpected becomes a 500 with the same JSON shape, never a
stack trace.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ExceptionHandler

from plait.domain.errors import PlanError
from plait.eventstore import ConcurrencyError, StoreError, StoreUnavailable
from plait.execution import service

log = logging.getLogger(__name__)

# Application errors by class; a subclass the lead adds later falls back to its base's status.
SERVICE_STATUS: dict[type[Exception], int] = {
    service.UnknownProject: 404,
    service.UnknownRun: 404,
    service.UnknownTask: 404,
    service.NoPlan: 400,
    service.RunAlreadyActive: 409,
    service.NotResumable: 409,
    service.NoActiveRun: 409,
    service.NoBaseBranch: 400,
    service.AgentsUnavailable: 400,
    service.SandboxUnavailable: 400,
    service.BadWorktreeRoot: 400,
    service.NotARepository: 400,
    service.RepositoryChanged: 409,
    service.InvalidId: 400,
}

HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "request_too_large",
    415: "unsupported_media_type",
    421: "misdirected_request",
    422: "unprocessable",
    500: "internal_error",
    503: "unavailable",
}


class ApiError(HTTPException):
    """An error raised by the HTTP layer itself (bad input, not started, ...)."""

    def __init__(
        self,
        status_code: int,
        code: str,
        message: str,
        *,
        headers: Mapping[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(status_code, message, dict(headers) if headers else None)
        self.code = code
        self.message = message
        self.extra = extra


def error_response(
    status: int,
    code: str,
    message: str,
    *,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    return JSONResponse(
        {"error": {"code": code, "message": message, **extra}}, status, headers=headers
    )


def snake_case(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


async def on_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if isinstance(exc, ApiError):
        return error_response(
            exc.status_code, exc.code, exc.message, headers=exc.headers, **exc.extra
        )
    code = HTTP_CODES.get(exc.status_code, "error")
    return error_response(exc.status_code, code, str(exc.detail), headers=exc.headers)


async def on_service_error(request: Request, exc: Exception) -> Response:
    status = next((s for cls, s in SERVICE_STATUS.items() if isinstance(exc, cls)), 400)
    extra: dict[str, Any] = {}
    run_id = getattr(exc, "run_id", None)
    if isinstance(run_id, str):
        extra["run_id"] = run_id
    return error_response(status, snake_case(type(exc).__name__), str(exc), **extra)


async def on_plan_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, PlanError)
    message = f"the plan was refused: {len(exc.problems)} problem(s)"
    return error_response(422, "invalid_plan", message, problems=exc.problems)


async def on_store_error(request: Request, exc: Exception) -> Response:
    if isinstance(exc, StoreUnavailable):
        return error_response(503, "store_unavailable", str(exc))
    if isinstance(exc, ConcurrencyError):
        return error_response(409, "conflict", "someone else changed this; try again")
    log.error("store error on %s %s: %s", request.method, request.url.path, exc)
    return error_response(500, "store_error", "the event store failed; see the server log")


async def on_unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(500, "internal_error", "internal error; see the server log")


EXCEPTION_HANDLERS: dict[Any, ExceptionHandler] = {
    HTTPException: on_http_error,
    service.ServiceError: on_service_error,
    PlanError: on_plan_error,
    StoreError: on_store_error,
    Exception: on_unexpected,
}
