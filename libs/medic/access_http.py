"""The access gate in front of every HTTP route, and the dashboard's sign-in (see :mod:`medic.access`).

One ASGI layer decides for every route, so a route added later is protected by default:
only the paths in :data:`OPEN_PREFIXES` are reachable without an identity. The verified
identity is left in ``request.state.identity`` for the routes that record who acted.

A browser cannot add an ``Authorization`` header to a page load, so the sign-in form takes
a token once and sets it as an HttpOnly, SameSite=Strict cookie. A state-changing request
authenticated by that cookie must also come from the page's own origin (``Origin`` equal
to ``Host``): another site cannot make a signed-in browser approve anything.
"""

from __future__ import annotations

import json
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from medic.access import SESSION_COOKIE, AccessPolicy, Scope
from medic.http_guard import ASGIApp, Receive, Send
from medic.http_guard import Scope as AsgiScope

OPEN_PREFIXES = (
    "/healthz",
    "/readyz",
    "/metrics",
    "/webhooks/",
    "/slack/",
    "/sandbox/",
    "/auth/",
    "/static/",
)
"""Reachable without a token: probes, metrics, and what is verified by its own signature
(GitHub webhooks, Slack requests), the sandboxes, the sign-in and the static assets."""
OPEN_EXACT = frozenset({"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc", "/slack/events"})
"""``/slack/events`` carries Slack's signature instead (checked by Bolt); its identity is the Slack user."""
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
SESSION_SECONDS = 12 * 3600

SIGN_IN_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>ci-medic: sign in</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body style="font-family: system-ui, sans-serif; max-width: 28rem; margin: 4rem auto">
<h1>ci-medic</h1>
<p>This ci-medic needs an API token to show its audit trail and approvals.</p>
<form method="post" action="/auth/session">
<label>API token <input name="token" type="password" autocomplete="current-password" required></label>
<button type="submit">Sign in</button>
</form>
<p><small>The token is kept in an HttpOnly cookie for 12 hours;
<code>POST /auth/logout</code> ends it.</small></p>
</body></html>
"""


class AccessGuard:
    def __init__(self, app: ASGIApp, policy: AccessPolicy) -> None:
        self.app = app
        self.policy = policy

    async def __call__(self, scope: AsgiScope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.policy.enforced or _is_open(str(scope.get("path", ""))):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers") or []}
        cookies = _cookies(headers.get("cookie", ""))
        client = scope.get("client")
        identity = self.policy.identify(headers, cookies, client[0] if client else None)
        method = str(scope.get("method", "GET"))
        if identity is None:
            await _refuse(
                send,
                401,
                "an API token is needed (Authorization: Bearer, or sign in at /auth/session)",
                html=method == "GET" and scope.get("path") == "/",
            )
            return
        needed = Scope.READ if method in _SAFE_METHODS else Scope.APPROVE
        if not identity.may(needed):
            await _refuse(send, 403, f"{identity.principal} lacks the {needed.value} scope")
            return
        by_cookie = "authorization" not in headers
        if method not in _SAFE_METHODS and by_cookie and not _same_origin(headers):
            await _refuse(send, 403, "a signed-in browser may only act from this site's own pages")
            return
        scope.setdefault("state", {})["identity"] = identity
        await self.app(scope, receive, send)


def _is_open(path: str) -> bool:
    return path in OPEN_EXACT or path.startswith(OPEN_PREFIXES)


def _cookies(header: str) -> dict[str, str]:
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(header)
    except Exception:  # a malformed Cookie header is no credential, not an error
        return {}
    return {key: morsel.value for key, morsel in jar.items()}


def _same_origin(headers: dict[str, str]) -> bool:
    origin = headers.get("origin")
    if origin is None:
        return headers.get("sec-fetch-site", "same-origin") in {"same-origin", "none"}
    host = headers.get("host", "")
    return origin.split("://", 1)[-1].rstrip("/") == host


async def _refuse(send: Send, status: int, detail: str, *, html: bool = False) -> None:
    body = SIGN_IN_PAGE.encode() if html else json.dumps({"detail": detail}).encode()
    kind = b"text/html; charset=utf-8" if html else b"application/json"
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", kind), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


def sign_in_router(policy: AccessPolicy) -> APIRouter:
    """``GET /auth/session`` (the form), ``POST /auth/session`` (token -> cookie), ``POST /auth/logout``."""
    router = APIRouter(prefix="/auth", tags=["access"])

    @router.get("/session", response_class=HTMLResponse, include_in_schema=False)
    async def form() -> HTMLResponse:
        return HTMLResponse(SIGN_IN_PAGE)

    @router.post("/session", include_in_schema=False)
    async def sign_in(request: Request) -> Response:
        body = await request.body()
        token = _form_token(body[:4096])
        if not token or policy.identify_token(token) is None:
            return HTMLResponse(SIGN_IN_PAGE.replace("<form", "<p><b>Unknown token.</b></p><form"), 401)
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(
            SESSION_COOKIE,
            token,
            max_age=SESSION_SECONDS,
            httponly=True,
            samesite="strict",
            secure=_https(request),
            path="/",
        )
        return response

    @router.post("/logout", include_in_schema=False)
    async def sign_out() -> Response:
        response = RedirectResponse("/auth/session", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    return router


def _form_token(body: bytes) -> str | None:
    try:
        fields: dict[str, Any] = parse_qs(body.decode("utf-8"), max_num_fields=5)
    except (UnicodeDecodeError, ValueError):
        return None
    values = fields.get("token") or []
    return str(values[0]).strip() if values else None


def _https(request: Request) -> bool:
    return request.url.scheme == "https" or request.headers.get("x-forwarded-proto") == "https"
