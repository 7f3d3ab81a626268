"""Rate-limit budget and fault modes of the sandbox GitHub.

Clients must be proven against GitHub's unfriendly days: an exhausted primary limit (403 with
``x-ratelimit-remaining: 0`` until ``x-ratelimit-reset``), bursts of 502/503, and ordinary
per-token accounting. Budgets follow the docs' shape: an hourly window per token.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

RATE_LIMIT_DOCS = "https://docs.github.com/rest/using-the-rest-api/rate-limits-for-the-rest-api"


@dataclass
class Window:
    limit: int
    used: int
    reset: int
    in_flight: int = 0
    most_in_flight: int = 0
    """The most requests of this credential the sandbox was answering at once: GitHub's
    secondary rate limits punish concurrent requests, so a client's concurrency is observable."""

    @property
    def remaining(self) -> int:
        return max(self.limit - self.used, 0)

    def headers(self, *, exhausted: bool = False) -> dict[str, str]:
        return {
            "x-ratelimit-limit": str(self.limit),
            "x-ratelimit-remaining": "0" if exhausted else str(self.remaining),
            "x-ratelimit-used": str(self.limit if exhausted else self.used),
            "x-ratelimit-reset": str(self.reset),
            "x-ratelimit-resource": "core",
        }


@dataclass
class RateBudget:
    """Hourly budget per credential; anonymous callers share one smaller window."""

    token_limit: int = 5000
    anonymous_limit: int = 600
    window_seconds: int = 3600
    windows: dict[str, Window] = field(default_factory=dict)

    def window(self, credential: str | None) -> Window:
        key = credential or "<anonymous>"
        now = time.time()
        current = self.windows.get(key)
        if current is None or current.reset <= now:
            limit = self.token_limit if credential else self.anonymous_limit
            current = Window(limit, 0, int(now) + self.window_seconds)
            self.windows[key] = current
        return current


@dataclass
class FaultModes:
    rate_limited_until: float = 0.0
    server_errors: int = 0
    latency_seconds: float = 0.0
    """Added to every API answer: real GitHub takes tens to hundreds of milliseconds."""
    _served_errors: int = 0

    def exhausted_reset(self) -> int | None:
        """Epoch second at which the forced exhaustion ends, or None when not exhausted."""
        if time.time() < self.rate_limited_until:
            return math.ceil(self.rate_limited_until)
        return None

    def take_server_error(self) -> int | None:
        """The status of the next injected 5xx, alternating 502 and 503, or None."""
        if self.server_errors <= 0:
            return None
        self.server_errors -= 1
        self._served_errors += 1
        return 502 if self._served_errors % 2 else 503


def parse_credential(authorization: str | None) -> tuple[bool, str | None]:
    """(valid, token). GitHub accepts ``Bearer`` and ``token`` schemes; no header is anonymous."""
    if not authorization:
        return True, None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() in {"bearer", "token"} and token.strip():
        return True, token.strip()
    return False, None
