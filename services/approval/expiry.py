"""The expiry sweeper: every few seconds, the desk reconciles (expires what is past its time)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from medic.telemetry import logger

log = logger(__name__)


class Sweeper:
    def __init__(self, sweep: Callable[[], Awaitable[None]], *, every_seconds: float) -> None:
        self.sweep = sweep
        self.every_seconds = every_seconds
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    def start(self) -> None:
        self._stopping.clear()
        self._task = asyncio.create_task(self._run(), name="approval-expiry")

    async def stop(self) -> None:
        """Stop on a flag, not cancel(): nats-py swallows CancelledError mid-publish."""
        self._stopping.set()
        if self._task is not None:
            await self._task
            self._task = None

    async def _run(self) -> None:
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.every_seconds)
                return
            try:
                await self.sweep()
            except Exception as exc:  # keep sweeping; the next pass retries
                log.warning("approval_sweep_failed", error=str(exc))
