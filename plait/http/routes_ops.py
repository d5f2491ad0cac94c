"""Operations and the page: /healthz, /metrics, /openapi.json, and the dashboard at /."""

from __future__ import annotations

import asyncio
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from plait.http.metrics import CONTENT_TYPE
from plait.http.openapi import Op, body, documented, openapi_document, query, ref
from plait.http.state import config_of, runtime_of

STATIC = Path(__file__).parent / "static"
# The page reads its token from the address; never let it leak through a Referer.
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}


@documented("get", Op("Check health", {"200": body(ref("Health"), "Serving")}))
async def healthz(request: Request) -> JSONResponse:
    runtime = runtime_of(request)
    position = await asyncio.to_thread(runtime.store.last_position)
    projected = runtime.plait.projector.position
    return JSONResponse({"status": "ok", "position": position, "projected": projected})


@documented(
    "get",
    Op("Get metrics", {"200": body({"type": "string"}, "Prometheus text format", "text/plain")}),
)
async def metrics(request: Request) -> Response:
    runtime = runtime_of(request)
    return Response(await asyncio.to_thread(runtime.metrics.render), media_type=CONTENT_TYPE)


@documented("get", Op("Get this document", {"200": body({"type": "object"}, "OpenAPI")}))
async def openapi(request: Request) -> JSONResponse:
    state = request.app.state
    if getattr(state, "openapi", None) is None:  # made once per app, from its own routes
        state.openapi = openapi_document(request.app.routes, config_of(request).open_paths)
    return JSONResponse(state.openapi)


@documented(
    "get",
    Op(
        "Open the dashboard",
        {
            "200": body({"type": "string"}, "The page", "text/html"),
            "303": {"description": "`?token=<token>`: to `/`, with the dashboard's cookie set"},
        },
        params=(query("token", {"type": "string"}, "The token, exchanged for the cookie"),),
    ),
)
async def dashboard(request: Request) -> FileResponse:
    return FileResponse(STATIC / "index.html", media_type="text/html", headers=PAGE_HEADERS)


routes = [
    Route("/", dashboard, methods=["GET"]),
    Route("/healthz", healthz, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
    Route("/openapi.json", openapi, methods=["GET"]),
    Mount("/static", StaticFiles(directory=STATIC, check_dir=False), name="static"),
]
