"""HTTP: the page at ``/``, its figures as JSON for the charts, and the vendored static files.

The page reads the public API of the app it is mounted in (in-process, over ASGI) unless
``api_url`` points elsewhere, e.g. at the projector's pod when services run split.
"""

# No `from __future__ import annotations`: FastAPI reads the handlers' annotations at runtime.

import hashlib
from functools import cache
from importlib import resources
from typing import Annotated, Any

import httpx
from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from medic.services.dashboard.figures import Figures, build_figures
from medic.services.dashboard.page import render_page
from medic.services.dashboard.source import read_snapshot

STATIC_PREFIX = "/static/dashboard"
STATIC_TYPES = {
    "dashboard.css": "text/css; charset=utf-8",
    "dashboard.js": "text/javascript; charset=utf-8",
    "chart.umd.min.js": "text/javascript; charset=utf-8",
}
PAGE_HEADERS = {
    # No inline script or style anywhere: every value on the page is data, never code.
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'none'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
API_TIMEOUT = 5.0
FORWARDED = frozenset({"authorization", "cookie"})


@cache
def static_file(name: str) -> tuple[bytes, str]:
    """A packaged static file and its content hash (the cache-busting ``v`` of its URL)."""
    body = (resources.files(__package__) / "static" / name).read_bytes()
    return body, hashlib.sha256(body).hexdigest()[:16]


def asset_urls() -> dict[str, str]:
    """Relative URLs, so the page also works behind a proxy that adds a path prefix."""
    return {
        key: f"{STATIC_PREFIX.lstrip('/')}/{name}?v={static_file(name)[1]}"
        for key, name in (("css", "dashboard.css"), ("js", "dashboard.js"), ("chart", "chart.umd.min.js"))
    }


def router(*, api_url: str | None = None) -> APIRouter:
    """``GET /``, ``GET /api/dashboard`` and ``GET /static/dashboard/{name}``."""
    routes = APIRouter(tags=["dashboard"])

    def client(request: Request) -> httpx.AsyncClient:
        # The page reads with the viewer's own credentials (token, session cookie, or the trusted
        # proxy's identity header from the same peer): it never shows more than they may read.
        headers = {k: v for k, v in request.headers.items() if k in FORWARDED or k.startswith("x-")}
        if api_url is not None:
            return httpx.AsyncClient(base_url=api_url, timeout=API_TIMEOUT, headers=headers)
        # An endpoint that raises becomes a 500 here, shown as a note rather than breaking the page.
        peer = (request.client.host, request.client.port) if request.client else ("127.0.0.1", 123)
        transport = httpx.ASGITransport(app=request.app, raise_app_exceptions=False, client=peer)
        return httpx.AsyncClient(
            transport=transport, base_url="http://dashboard", timeout=API_TIMEOUT, headers=headers
        )

    async def figures(request: Request) -> Figures:
        async with client(request) as http:
            return build_figures(await read_snapshot(http))

    @routes.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page(request: Request) -> HTMLResponse:
        return HTMLResponse(render_page(await figures(request), asset_urls()), headers=PAGE_HEADERS)

    @routes.get("/api/dashboard", summary="The dashboard's figures, as its charts draw them")
    async def dashboard_json(request: Request) -> JSONResponse:
        data: dict[str, Any] = (await figures(request)).as_json()
        return JSONResponse(data, headers={"Cache-Control": "no-store"})

    @routes.get(STATIC_PREFIX + "/{name}", include_in_schema=False)
    async def static(name: str, v: Annotated[str | None, Query(max_length=64)] = None) -> Response:
        if name not in STATIC_TYPES:
            raise HTTPException(404, "no such dashboard file")
        body, digest = static_file(name)
        caching = "public, max-age=31536000, immutable" if v == digest else "no-cache"
        headers = {"Cache-Control": caching, "ETag": f'"{digest}"', "X-Content-Type-Options": "nosniff"}
        return Response(body, media_type=STATIC_TYPES[name], headers=headers)

    return routes
