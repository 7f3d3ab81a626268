"""Ask a running sandbox GitHub to produce failing runs (``medic simulate --failures N``)."""

from __future__ import annotations

from typing import Any

import httpx


async def simulate(url: str, failures: int, *, repositories: list[str] | None = None) -> dict[str, Any]:
    """POST ``{url}/_sandbox/simulate``; returns the sandbox's answer (one entry per failure).

    ``url`` is where the sandbox GitHub is served, including any mount prefix.
    """
    body: dict[str, Any] = {"failures": failures}
    if repositories:
        body["repositories"] = repositories
    async with httpx.AsyncClient(timeout=30.0) as client:
        response = await client.post(f"{url.rstrip('/')}/_sandbox/simulate", json=body)
        response.raise_for_status()
        answer: dict[str, Any] = response.json()
        return answer
