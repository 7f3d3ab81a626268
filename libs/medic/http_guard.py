"""One gate in front of every HTTP route: hostile bytes get a clear 400, never a 500.

A NUL in a query parameter reaches PostgreSQL as a bound value and fails there; a JSON
body nested 5,000 deep overflows Python's recursive parser; a lone surrogate parses but
cannot be encoded again. Each route could check for these; one ASGI layer checks once for
every route (the API, the dashboard, the sandboxes), before any handler runs.

Webhook bodies are left to the monitor: a signed delivery from GitHub with an odd
character in a commit message must be cleaned and kept, not refused (see
:mod:`medic.boundary`); its depth is checked there.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import unquote_to_bytes

from medic.boundary import json_too_deep

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

MAX_JSON_BODY_BYTES = 1024 * 1024
"""An approval decision is a few hundred bytes; the sandboxes' control bodies are small too."""
UNGUARDED_BODY_PREFIXES = ("/webhooks/",)
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def query_problem(query_string: bytes) -> str | None:
    """Why a raw query string is refused, or None. Control characters and invalid UTF-8 never
    belong in a filter value, and PostgreSQL refuses NUL outright."""
    for part in query_string.split(b"&"):
        decoded = unquote_to_bytes(part.replace(b"+", b" "))
        if any(b < 0x20 or b == 0x7F for b in decoded):
            return "a query parameter holds a control character (e.g. NUL)"
        try:
            decoded.decode("utf-8")
        except UnicodeDecodeError:
            return "a query parameter is not valid UTF-8"
    return None


def path_problem(path: str) -> str | None:
    if any(ord(c) < 0x20 or ord(c) == 0x7F or 0xD800 <= ord(c) <= 0xDFFF for c in path):
        return "the path holds a control character (e.g. NUL)"
    return None


def body_problem(body: bytes) -> str | None:
    """Why a JSON body is refused before any handler parses it, or None."""
    if json_too_deep(body):
        return "JSON body nests too deeply"
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return "body is not valid UTF-8"
    try:
        parsed = json.loads(text)
    except ValueError:
        return None  # malformed JSON is the route's to answer (422, with details)
    if _unencodable(parsed):
        return "JSON body holds a NUL or a lone surrogate"
    return None


def _unencodable(value: Any) -> bool:
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, str):
            if "\x00" in node or any(0xD800 <= ord(c) <= 0xDFFF for c in node):
                return True
        elif isinstance(node, dict):
            stack.extend(node.keys())
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return False


class HostileInputGuard:
    """ASGI middleware: refuses unusable paths, query strings and JSON bodies with 400 (413 if huge)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        problem = path_problem(scope.get("path", "")) or query_problem(scope.get("query_string", b""))
        if problem is not None:
            await _refuse(send, 400, problem)
            return
        if not self._body_checked(scope):
            await self.app(scope, receive, send)
            return
        body, more = await _read_body(receive, MAX_JSON_BODY_BYTES)
        if more:
            await _refuse(send, 413, f"JSON body over {MAX_JSON_BODY_BYTES} bytes")
            return
        problem = body_problem(body)
        if problem is not None:
            await _refuse(send, 400, problem)
            return
        await self.app(scope, _replay(body, receive), send)

    @staticmethod
    def _body_checked(scope: Scope) -> bool:
        if scope.get("method") not in _BODY_METHODS:
            return False
        if str(scope.get("path", "")).startswith(UNGUARDED_BODY_PREFIXES):
            return False
        headers = dict(scope.get("headers") or [])
        content_type = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        # FastAPI parses a body without a content type as JSON too
        return not content_type or content_type == b"application/json" or content_type.endswith(b"+json")


async def _read_body(receive: Receive, limit: int) -> tuple[bytes, bool]:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b"".join(chunks), False
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return b"", True
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks), False


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def again() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return again


async def _refuse(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
