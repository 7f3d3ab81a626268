"""One call in flight per key: concurrent askers of the same question share its answer.

Many failures of one push reach a service together, and each would ask GitHub the same
question (the branch's newest runs, its last green run) at the same moment. Here the first
asker's call is the only request; everyone who asks while it is in flight awaits that call
and gets its result or its exception. Nothing is kept once the call ends: this is not a
cache, so an answer is never older than a request the caller could have made itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

from prometheus_client import Counter

COALESCED = Counter(
    "medic_coalesced_calls_total",
    "Calls answered by another caller's identical call already in flight",
    ["call"],
)


K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class SingleFlight(Generic[K, V]):
    """Coalesces concurrent calls per key; ``name`` labels the coalesced-calls counter."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._flights: dict[K, asyncio.Future[V]] = {}

    def in_flight(self, key: K) -> bool:
        return key in self._flights

    async def run(self, key: K, call: Callable[[], Awaitable[V]]) -> V:
        """``call()``'s result, from the call in flight for ``key`` if there is one.

        The call runs as its own task and is shielded: one asker cancelled (its message
        redelivered, its service stopping) does not cancel the answer the others await.
        """
        flight = self._flights.get(key)
        if flight is None:
            flight = asyncio.ensure_future(call())
            self._flights[key] = flight
            flight.add_done_callback(lambda done: self._landed(key, done))
        else:
            COALESCED.labels(self.name).inc()
        return await asyncio.shield(flight)

    def _landed(self, key: K, done: asyncio.Future[V]) -> None:
        if self._flights.get(key) is done:
            del self._flights[key]
        if not done.cancelled():
            done.exception()  # retrieved here, so a flight whose askers all left logs no warning
