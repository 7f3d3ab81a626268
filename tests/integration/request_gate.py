"""An ASGI wrapper in front of the sandbox GitHub that shows which requests were on the wire together.

Each request whose path matches is held until ``expected`` of them are in flight at once, or
``patience`` seconds pass: a client that sends them one after another fills the gate only
through the patience (and ``most`` stays below ``expected``); one that sends them together
passes at once. No timing is asserted, only the count seen at the same moment.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from typing import Any

Scope = dict[str, Any]


class RequestGate:
    def __init__(self, app: Any, pattern: str, *, expected: int, patience: float = 3.0) -> None:
        self.app, self.pattern, self.expected, self.patience = app, re.compile(pattern), expected, patience
        self.in_flight = 0
        self.most = 0
        self.seen: list[str] = []
        self._full = asyncio.Event()

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not self.pattern.search(path):
            await self.app(scope, receive, send)
            return
        self.seen.append(path)
        self.in_flight += 1
        self.most = max(self.most, self.in_flight)
        if self.in_flight >= self.expected:
            self._full.set()
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.patience):
                    await self._full.wait()
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1
