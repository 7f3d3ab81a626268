"""A remediation counts as done only when CI is green again: wait for the new run attempt."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from medic.github.changes import RepositoryChanges
from medic.github.client import GitHubClient


@dataclass(frozen=True)
class Verdict:
    green: bool
    attempt: int | None
    detail: str


Probe = Callable[[], Awaitable[Verdict | None]]
"""One look at CI: the verdict once it is known, else None (look again later)."""


async def _poll(
    probe: Probe, *, within_seconds: float, heartbeat: Callable[[], Awaitable[None]]
) -> Verdict | None:
    """Look until a verdict or the deadline, backing off to 10 s and keeping the delivery alive."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_seconds
    pause = 0.25
    while loop.time() < deadline:
        verdict = await probe()
        if verdict is not None:
            return verdict
        await heartbeat()
        await asyncio.sleep(pause)
        pause = min(pause * 2, 10.0)
    return None


async def wait_for_new_attempt(
    github: GitHubClient,
    repository: str,
    run_id: int,
    *,
    after_attempt: int,
    within_seconds: float,
    heartbeat: Callable[[], Awaitable[None]],
) -> Verdict:
    async def probe() -> Verdict | None:
        run = await github.get_run(repository, run_id)
        if run.run_attempt > after_attempt and run.status == "completed":
            green = run.conclusion == "success"
            return Verdict(green, run.run_attempt, f"attempt {run.run_attempt} concluded {run.conclusion}")
        return None

    found = await _poll(probe, within_seconds=within_seconds, heartbeat=heartbeat)
    return found or Verdict(
        False, None, f"no finished attempt after {after_attempt} within {within_seconds:.0f}s"
    )


async def wait_for_checks(
    changes: RepositoryChanges,
    repository: str,
    ref: str,
    *,
    within_seconds: float,
    heartbeat: Callable[[], Awaitable[None]],
) -> Verdict:
    """A fix counts when every check of its pull request's head concluded green."""

    async def probe() -> Verdict | None:
        checks = await changes.checks(repository, ref)
        if not checks.done:
            return None
        if checks.failed:
            return Verdict(False, None, f"checks failed on {ref[:12]}: {', '.join(checks.failed)}")
        return Verdict(True, None, f"all {checks.total} checks passed on {ref[:12]}")

    found = await _poll(probe, within_seconds=within_seconds, heartbeat=heartbeat)
    return found or Verdict(
        False, None, f"unverified: the checks of {ref[:12]} did not conclude within {within_seconds:.0f}s"
    )
