"""Per-channel pacing: Slack allows about one message a second per channel.

A notifier that bursts twenty notices into one channel gets 429s and, worse, notices that
arrive out of order. The pacer spaces calls per channel and, after a 429, holds the channel
for the ``Retry-After`` Slack gave, so every caller in this process waits its turn instead
of hammering a limited channel.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


class ChannelPacer:
    def __init__(self, *, per_second: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        if per_second <= 0:
            raise ValueError("per_second must be positive")
        self.interval = 1.0 / per_second
        self._clock = clock
        self._next_free: dict[str, float] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    def _lock(self, channel: str) -> asyncio.Lock:
        lock = self._locks.get(channel)
        if lock is None:
            lock = self._locks[channel] = asyncio.Lock()
        return lock

    def wait_seconds(self, channel: str) -> float:
        """How long a call to ``channel`` made now would have to wait."""
        return max(0.0, self._next_free.get(channel, 0.0) - self._clock())

    async def slot(self, channel: str) -> None:
        """Wait until ``channel`` may take one more message, and book the slot."""
        async with self._lock(channel):
            delay = self.wait_seconds(channel)
            if delay > 0:
                await asyncio.sleep(delay)
            self._next_free[channel] = self._clock() + self.interval

    def hold(self, channel: str, seconds: float) -> None:
        """Slack said 429 with ``Retry-After: seconds``: nobody sends to ``channel`` before then."""
        until = self._clock() + max(0.0, seconds)
        self._next_free[channel] = max(self._next_free.get(channel, 0.0), until)
