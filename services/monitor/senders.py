"""Repositories that have sent a webhook: the ones the catch-up poll watches.

A webhook delivery that never arrives (the monitor was down, GitHub gave up retrying)
leaves a failure unseen unless someone asks GitHub. Every repository that has sent a
verified webhook is remembered here (JetStream KV, shared by replicas, kept across
restarts), and the poller asks each of them on start and every interval, with
``If-None-Match``: an idle repository answers 304 and costs no rate limit.

An entry lives ``SENDER_MEMORY_SECONDS`` after its last webhook, so a repository that
stopped sending (hook removed, repository archived) stops being polled.
"""

from __future__ import annotations

import contextlib
import time

from nats.js.errors import KeyNotFoundError, NoKeysError
from nats.js.kv import KeyValue

from medic.services.monitor.cursors import repository_key
from medic.telemetry import logger

log = logger(__name__)

SENDER_MEMORY_SECONDS = 30 * 24 * 3600.0
REFRESH_SECONDS = 24 * 3600.0
"""A replica rewrites a sender's entry at most daily: one KV write per repository per day."""


class WebhookSenders:
    def __init__(self, kv: KeyValue) -> None:
        self.kv = kv
        self._written: dict[str, float] = {}

    async def remember(self, repository: str) -> None:
        """Note a verified delivery from ``repository`` (cheap: in memory unless a day has passed)."""
        name = repository.lower()
        now = time.time()
        if now - self._written.get(name, 0.0) < REFRESH_SECONDS:
            return
        await self.kv.put(repository_key("sender", name), repository.encode())
        self._written[name] = now

    async def repositories(self) -> list[str]:
        try:
            keys = await self.kv.keys()
        except NoKeysError:
            return []
        names: list[str] = []
        for key in keys:
            if not key.startswith("sender."):
                continue
            with contextlib.suppress(KeyNotFoundError):
                entry = await self.kv.get(key)
                if entry.value:
                    names.append(entry.value.decode(errors="replace"))
        return names
