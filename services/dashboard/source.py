"""Where the dashboard's numbers come from: the public query and approval APIs, over HTTP.

Going through the API rather than the projector's pool keeps one contract for every reader,
and lets a missing piece (the approval service in another pod, the projector not started yet)
show as a note on the page instead of an error page.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import httpx

AUDIT_ROWS = 50
FAILURE_ROWS = 500
"""The latest failures the resolution histogram (and the hourly fallback) are computed from."""


@dataclass(frozen=True)
class Snapshot:
    """One read of everything the page shows; ``None`` marks a source that did not answer."""

    summary: dict[str, Any] | None
    failures: list[dict[str, Any]] | None
    audit: list[dict[str, Any]] | None
    approvals: list[dict[str, Any]] | None
    problems: list[str] = field(default_factory=list)


async def _get(http: httpx.AsyncClient, path: str, params: dict[str, Any], problems: list[str]) -> Any:
    try:
        response = await http.get(path, params=params)
    except httpx.HTTPError as exc:
        problems.append(f"{path}: {type(exc).__name__}")
        return None
    if response.status_code != 200:
        problems.append(f"{path}: HTTP {response.status_code}")
        return None
    return response.json()


async def read_snapshot(http: httpx.AsyncClient) -> Snapshot:
    """Read the four sources concurrently; each one that fails is listed in ``problems``."""
    problems: list[str] = []
    summary, failures, audit, approvals = await asyncio.gather(
        _get(http, "/api/metrics/summary", {}, problems),
        _get(http, "/api/failures", {"limit": FAILURE_ROWS}, problems),
        _get(http, "/api/audit", {"limit": AUDIT_ROWS, "order": "desc"}, problems),
        _get(http, "/api/approvals", {"status": "pending"}, problems),
    )
    return Snapshot(
        summary=summary if isinstance(summary, dict) else None,
        failures=_items(failures),
        audit=_items(audit),
        approvals=approvals if isinstance(approvals, list) else None,
        problems=problems,
    )


def _items(page: Any) -> list[dict[str, Any]] | None:
    if isinstance(page, dict) and isinstance(page.get("items"), list):
        return [item for item in page["items"] if isinstance(item, dict)]
    return None
