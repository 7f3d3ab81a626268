"""Ask a running sandbox GitHub to produce failing runs (``medic simulate --failures N``).

The failures are asked for in batches, so a progress bar can follow them; afterwards the
running system's API says how far each one got (``outcomes``), and :func:`summarize` folds
that into one row per kind of failure, which is what a person reads at the end of a run.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from medic.events import derive_failure_id

NOT_SEEN = "not seen yet"
"""A failure the projector has no row for (the webhook is still on its way, or was lost)."""
SETTLED = frozenset(
    {"awaiting_approval", "remediated", "remediation_failed", "rejected", "expired", "no_action"}
)


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


async def simulate_in_batches(
    url: str, failures: int, *, batch: int = 25, progress: Callable[[int], None] | None = None
) -> list[dict[str, Any]]:
    """Like :func:`simulate`, ``batch`` failures per request, calling ``progress(n)`` after each."""
    created: list[dict[str, Any]] = []
    async with httpx.AsyncClient(timeout=30.0) as client:
        while len(created) < failures:
            size = min(batch, failures - len(created))
            response = await client.post(f"{url.rstrip('/')}/_sandbox/simulate", json={"failures": size})
            response.raise_for_status()
            answered = list(response.json().get("failures", []))
            created.extend(answered)
            if progress is not None:
                progress(len(answered))
    return created


def failure_id_of(run: dict[str, Any]) -> str:
    return derive_failure_id(str(run["repository"]), int(run["run_id"]), int(run.get("run_attempt", 1)))


async def outcomes(
    api_url: str, created: Sequence[dict[str, Any]], *, concurrency: int = 16
) -> dict[str, str]:
    """Each simulated failure's state in the running system, by failure id."""
    gate = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(base_url=api_url.rstrip("/"), timeout=10.0) as client:

        async def one(failure_id: str) -> tuple[str, str]:
            async with gate:
                response = await client.get(f"/api/failures/{failure_id}")
            if response.status_code == 404:
                return failure_id, NOT_SEEN
            response.raise_for_status()
            body = response.json()
            return failure_id, str(body.get("failure", {}).get("state", NOT_SEEN))

        pairs = await asyncio.gather(*(one(failure_id_of(run)) for run in created))
    return dict(pairs)


async def wait_for_outcomes(
    api_url: str, created: Sequence[dict[str, Any]], *, within: float, interval: float = 0.5
) -> dict[str, str]:
    """Outcomes once every failure has settled, or as they stand after ``within`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        states = await outcomes(api_url, created)
        if all(state in SETTLED for state in states.values()) or loop.time() >= deadline:
            return states
        await asyncio.sleep(interval)


@dataclass(frozen=True)
class KindRow:
    kind: str
    failures: int
    states: Counter[str] = field(default_factory=Counter)


def summarize(created: Sequence[dict[str, Any]], states: dict[str, str] | None) -> list[KindRow]:
    """One row per kind of failure, with how many of them reached which state."""
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for run in created:
        by_kind.setdefault(str(run.get("scenario", "unknown")), []).append(run)
    rows = []
    for kind, runs in sorted(by_kind.items()):
        counted: Counter[str] = Counter()
        if states is not None:
            counted.update(states.get(failure_id_of(run), NOT_SEEN) for run in runs)
        rows.append(KindRow(kind, len(runs), counted))
    return rows
