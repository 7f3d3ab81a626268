"""What every route of the sandbox GitHub shares: paths under a mount, links, errors, pages.

Kept apart from the route modules so each of them (Actions, organisations and Apps, git data)
imports these one way, and none reaches into another's private names.
"""

from __future__ import annotations

import hashlib
from typing import Any

from fastapi import Request, Response
from fastapi.responses import JSONResponse

from medic.sandbox.github_payloads import Links


def route_path(request: Request) -> str:
    """The path inside this app, whether it is served alone or mounted under a prefix."""
    path: str = request.scope["path"]
    root: str = request.scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


def links_for(request: Request) -> Links:
    root: str = request.scope.get("root_path", "")
    return Links(api=f"{request.url.scheme}://{request.url.netloc}{root}".rstrip("/"))


def github_error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    body = {"message": message, "documentation_url": "https://docs.github.com/rest", "status": str(status)}
    return JSONResponse(body, status_code=status, headers=headers)


def page_of(items: list[Any], per_page: int, page: int) -> list[Any]:
    start = (page - 1) * per_page
    return items[start : start + per_page]


def link_header(request: Request, total: int, per_page: int, page: int) -> dict[str, str]:
    last = max((total + per_page - 1) // per_page, 1)
    if last == 1:
        return {}
    base = links_for(request).api + route_path(request)
    parts = []
    if page < last:
        parts += [f'<{base}?per_page={per_page}&page={page + 1}>; rel="next"']
        parts += [f'<{base}?per_page={per_page}&page={last}>; rel="last"']
    if page > 1:
        parts += [f'<{base}?per_page={per_page}&page=1>; rel="first"']
        parts += [f'<{base}?per_page={per_page}&page={page - 1}>; rel="prev"']
    return {"Link": ", ".join(parts)}


def conditional(request: Request, body: bytes, headers: dict[str, str]) -> Response:
    """GitHub's conditional GET: the body's ETag, and a 304 (which costs no rate limit) when the
    request's ``If-None-Match`` names it."""
    etag = 'W/"' + hashlib.sha256(body).hexdigest()[:40] + '"'
    headers = {
        "ETag": etag,
        "Cache-Control": "private, max-age=60, s-maxage=60",
        "Vary": "Accept, Authorization",
    } | headers
    if etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    return Response(body, media_type="application/json; charset=utf-8", headers=headers)
