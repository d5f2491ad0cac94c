"""Operations and the page: /healthz, /metrics, /openapi.json, and the dashboard at /."""

from __future__ import annotations

import asyncio
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from plait.http.metrics import CONTENT_TYPE
from plait.http.openapi import openapi_document
from plait.http.state import runtime_of

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


async def healthz(request: Request) -> JSONResponse:
    runtime = runtime_of(request)
    position = await asyncio.to_thread(runtime.store.last_position)
    projected = runtime.plait.projector.position
    return JSONResponse({"status": "ok", "position": position, "projected": projected})


async def metrics(request: Request) -> Response:
    runtime = runtime_of(request)
    return Response(await asyncio.to_thread(runtime.metrics.render), media_type=CONTENT_TYPE)


async def openapi(request: Request) -> JSONResponse:
    return JSONResponse(openapi_document())


async def dashboard(request: Request) -> FileResponse:
    return FileResponse(STATIC / "index.html", media_type="text/html", headers=PAGE_HEADERS)


routes = [
    Route("/", dashboard, methods=["GET"]),
    Route("/healthz", healthz, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
    Route("/openapi.json", openapi, methods=["GET"]),
    Mount("/static", StaticFiles(directory=STATIC, check_dir=False), name="static"),
]
