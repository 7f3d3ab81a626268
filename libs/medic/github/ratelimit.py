"""GitHub's rate-limit signals, read from response headers, and how long they tell us to wait.

Rules from GitHub's docs (see contracts/github/NOTES.md): a 403/429 with ``retry-after`` waits
that long; with ``x-ratelimit-remaining: 0`` it waits until ``x-ratelimit-reset``; a secondary
limit without either waits at least a minute. Any other 403 is a refusal, not a limit.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
from prometheus_client import Counter, Gauge

RATELIMIT_REMAINING = Gauge(
    "medic_github_ratelimit_remaining",
    "Requests left in the current GitHub rate-limit window, per resource",
    ["resource"],
)
REQUESTS = Counter(
    "medic_github_requests_total",
    "GitHub API requests by route template and status (or 'error' for transport failures)",
    ["method_route", "status"],
)

SECONDARY_LIMIT_MIN_WAIT = 60.0
RESET_MARGIN_SECONDS = 0.25


@dataclass(frozen=True)
class RateLimitWait:
    seconds: float
    reset_at: datetime | None
    reason: str


def observe(method_route: str, response: httpx.Response) -> None:
    REQUESTS.labels(method_route=method_route, status=str(response.status_code)).inc()
    remaining = response.headers.get("x-ratelimit-remaining")
    if remaining is not None and remaining.isdigit():
        resource = response.headers.get("x-ratelimit-resource", "core")
        RATELIMIT_REMAINING.labels(resource=resource).set(int(remaining))


def observe_failure(method_route: str) -> None:
    REQUESTS.labels(method_route=method_route, status="error").inc()


def _reset_at(response: httpx.Response) -> datetime | None:
    reset = response.headers.get("x-ratelimit-reset", "")
    return datetime.fromtimestamp(int(reset), UTC) if reset.isdigit() else None


def rate_limit_wait(response: httpx.Response, *, now: float | None = None) -> RateLimitWait | None:
    """How long GitHub asks us to wait, or None when the response is not a rate limit."""
    if response.status_code not in (403, 429):
        return None
    now = time.time() if now is None else now
    reset_at = _reset_at(response)
    retry_after = response.headers.get("retry-after", "")
    if retry_after.isdigit():
        return RateLimitWait(float(retry_after), reset_at, "retry-after")
    if response.headers.get("x-ratelimit-remaining") == "0":
        seconds = 0.0 if reset_at is None else max(reset_at.timestamp() - now, 0.0) + RESET_MARGIN_SECONDS
        return RateLimitWait(seconds, reset_at, "primary rate limit")
    if response.status_code == 429 or "secondary rate limit" in _message(response).lower():
        return RateLimitWait(SECONDARY_LIMIT_MIN_WAIT, reset_at, "secondary rate limit")
    return None


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:500]
    return str(body.get("message", "")) if isinstance(body, dict) else ""
