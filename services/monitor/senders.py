"""Repositories that have sent a webhook: the ones the catch-up poll watches.

A webhook delivery that never arrives (the monitor was down, GitHub gave up retrying)
leaves a failure unseen unless someone asks GitHub. Every repository that has sent a
verified webhook is remembered here (the kernel's record store, shared by replicas, kept
across restarts), and the poller asks each of them on start and every interval, with
``If-None-Match``: an idle repository answers 304 and costs no rate limit.

An entry lives ``SENDER_MEMORY_SECONDS`` after its last webhook, so a repository that
stopped sending (hook removed, repository archived) stops being polled.
"""

from __future__ import annotations

import time

from nats.js import JetStreamContext
from pydantic import BaseModel, ConfigDict

from medic.bus import Bucket, Topology
from medic.records import RecordStore, hashed_key

SENDER_MEMORY_SECONDS = 30 * 24 * 3600.0
REFRESH_SECONDS = 24 * 3600.0
"""A replica rewrites a sender's entry at most daily: one KV write per repository per day."""


class Sender(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    repository: str


class WebhookSenders:
    def __init__(self, store: RecordStore[Sender]) -> None:
        self.store = store
        self._written: dict[str, float] = {}

    @classmethod
    async def open(cls, js: JetStreamContext, topology: Topology) -> WebhookSenders:
        bucket = topology.bucket(Bucket.MONITOR_SENDERS)
        return cls(await RecordStore.open(js, bucket, Sender, ttl=SENDER_MEMORY_SECONDS))

    async def remember(self, repository: str) -> None:
        """Note a verified delivery from ``repository`` (cheap: in memory unless a day has passed)."""
        name = repository.lower()
        now = time.time()
        if now - self._written.get(name, 0.0) < REFRESH_SECONDS:
            return
        await self.store.put(hashed_key("sender", name), Sender(repository=repository))
        self._written[name] = now

    async def repositories(self) -> list[str]:
        return [found.record.repository async for _, found in self.store.items()]
