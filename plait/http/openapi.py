"""The OpenAPI 3 document, generated: the paths and their path parameters from the app's own
routes, each operation from the `@documented` note beside its endpoint, the plan's schemas
from the domain's field tables (plait.domain.plan.schema), the status words from
plait.domain.statuses, the event types from the event registry.

Every operation lists every status it can give: the guard's (401 unless its path is open,
403, 413, 421), the parameter checks' (400, 404), the application's (400, 404, 409, 422) and
503 while the store is unreachable. A route with a method no `@documented` note describes
stops the document from being made, so a route cannot be served undocumented.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from starlette.convertors import IntegerConvertor
from starlette.routing import BaseRoute, Route

from plait.domain.ids import ID_REGEX
from plait.http.api_details import JSON, body, ref
from plait.http.api_schemas import schemas
from plait.http.params import IdConvertor
from plait.http.security import COOKIE

__all__ = ["JSON", "Op", "body", "documented", "openapi_document", "query", "ref"]

ERROR_TEXT = {
    400: "Invalid input",
    401: "Missing or wrong bearer token or cookie",
    403: "Cross-site request",
    404: "No such project or run, or an invalid id",
    409: "Conflicts with the project's current state",
    413: "Request body too large",
    415: "Unsupported content type",
    421: "Host header not served here (DNS rebinding guard)",
    422: "A plan refused (`problems` lists every reason), or a body field this request "
    "does not take",
    503: "Starting, stopping, or the event store is unreachable",
}
READ_ERRORS = (400, 404, 421, 503)
WRITE_ERRORS = (400, 401, 403, 404, 409, 413, 415, 421, 422, 503)
SECURITY: list[JSON] = [{"bearer": []}, {"cookie": []}]
WRITES = frozenset({"post", "put", "patch", "delete"})

Endpoint = TypeVar("Endpoint", bound=Callable[..., Any])


@dataclass(frozen=True)
class Op:
    """What one method of a route does, accepts and answers (its path parameters and its
    errors are the generator's)."""

    summary: str
    ok: dict[str, JSON]
    params: tuple[JSON, ...] = ()
    request: JSON | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def documented(method: str, op: Op) -> Callable[[Endpoint], Endpoint]:
    """Notes `op` on the endpoint for `method` (one endpoint may serve several methods)."""

    def note(endpoint: Endpoint) -> Endpoint:
        endpoint.__dict__.setdefault("openapi", {})[method.lower()] = op
        return endpoint

    return note


def query(name: str, schema: JSON, description: str) -> JSON:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }


def path_parameter(name: str, convertor: object) -> JSON:
    if isinstance(convertor, IdConvertor):
        schema: JSON = {"type": "string", "pattern": f"^{ID_REGEX}$"}
    elif isinstance(convertor, IntegerConvertor):
        schema = {"type": "integer", "minimum": 0}
    else:
        schema = {"type": "string"}
    return {"name": name, "in": "path", "required": True, "schema": schema}


def operation(route: Route, method: str, op: Op, open_paths: frozenset[str]) -> JSON:
    write = method in WRITES
    is_open = not write and route.path in open_paths
    codes = WRITE_ERRORS if write else READ_ERRORS if is_open else (401, *READ_ERRORS)
    params = [path_parameter(n, c) for n, c in route.param_convertors.items()]
    document: JSON = {
        "summary": op.summary,
        "operationId": op.summary.lower().replace(" ", "_").replace("'", ""),
        "parameters": [*params, *op.params],
        "responses": {
            **op.ok,
            **{str(code): body(ref("Error"), ERROR_TEXT[code]) for code in sorted(codes)},
        },
        "security": [] if is_open else SECURITY,
        **op.extra,
    }
    if op.request is not None:
        document["requestBody"] = op.request
    return document


def paths(routes: Iterable[BaseRoute], open_paths: frozenset[str]) -> JSON:
    found: JSON = {}
    for route in routes:
        if not isinstance(route, Route):
            continue  # /static: the page's own files
        notes: dict[str, Op] = getattr(route.endpoint, "openapi", {})
        operations = found.setdefault(re.sub(r":\w+}", "}", route.path), {})
        for method in sorted(m.lower() for m in route.methods or () if m != "HEAD"):
            if method not in notes:
                raise LookupError(f"{method.upper()} {route.path}: no @documented note")
            operations[method] = operation(route, method, notes[method], open_paths)
    return found


def openapi_document(routes: Iterable[BaseRoute], open_paths: Iterable[str]) -> JSON:
    open_paths = frozenset(open_paths)
    unauthenticated = ", ".join(f"`{p}`" for p in sorted(open_paths)) or "none"
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "plait",
            "version": "1",
            "description": "Run a plan of coding tasks in parallel git worktrees. Every "
            "request needs `Authorization: Bearer <token>` or the dashboard's cookie (set by "
            f"`/?token=<token>`), except reads of {unauthenticated}.",
        },
        "paths": paths(routes, open_paths),
        "components": {
            "schemas": schemas(),
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "cookie": {"type": "apiKey", "in": "cookie", "name": COOKIE},
            },
        },
    }
