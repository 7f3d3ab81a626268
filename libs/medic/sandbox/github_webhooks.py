"""Signed webhook delivery, the way GitHub's Hookshot does it.

The receiver must verify ``X-Hub-Signature-256`` over the exact body bytes, de-duplicate by
``X-GitHub-Delivery`` or by content, and tolerate any order: the duplicate and shuffle modes
exist to prove that. A delivery that fails is logged and recorded, never raised, because a
real GitHub does not crash when a receiver is down either.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import random
import ssl
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import httpx
import structlog

log = structlog.get_logger(__name__)


_TLS = ssl.create_default_context()
"""Built once: a fresh default context per delivery batch cost more CPU than the delivery."""


def signature_256(secret: str, body: bytes) -> str:
    """``sha256=`` + lowercase hex HMAC-SHA256 of the raw body, keyed with the webhook secret."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Delivery:
    guid: str
    event: str
    action: str
    body: bytes


@dataclass
class DeliveryRecord:
    guid: str
    event: str
    action: str
    status: int | None
    error: str | None = None


@dataclass
class WebhookSender:
    url: str | None
    secret: str
    duplicates: bool = False
    shuffle: bool = False
    hook_id: int = 482_913_377
    attempts: int = 3
    history: deque[DeliveryRecord] = field(default_factory=lambda: deque(maxlen=500))
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def prepare(self, event: str, payload: dict[str, Any]) -> Delivery:
        body = json.dumps(payload, separators=(",", ":")).encode()
        return Delivery(str(uuid.uuid4()), event, str(payload.get("action", "")), body)

    def send_in_background(self, deliveries: list[Delivery]) -> None:
        """Queue a batch; duplicates keep their GUID, as GitHub's redeliveries do."""
        if self.url is None or not deliveries:
            return
        batch = [d for d in deliveries for _ in range(2 if self.duplicates else 1)]
        if self.shuffle:
            random.shuffle(batch)
        task = asyncio.create_task(self._deliver_all(batch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        """Wait for queued deliveries (tests and shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def _deliver_all(self, batch: list[Delivery]) -> None:
        async with httpx.AsyncClient(timeout=10.0, verify=_TLS) as client:
            for delivery in batch:
                try:
                    await self._deliver(client, delivery)
                except Exception:  # a broken delivery must never take the sandbox down
                    log.exception("sandbox_webhook_delivery_crashed", guid=delivery.guid)

    async def _deliver(self, client: httpx.AsyncClient, delivery: Delivery) -> None:
        assert self.url is not None
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "GitHub-Hookshot/a1b2c3d",
            "X-GitHub-Event": delivery.event,
            "X-GitHub-Delivery": delivery.guid,
            "X-GitHub-Hook-ID": str(self.hook_id),
            "X-GitHub-Hook-Installation-Target-Type": "repository",
            "X-GitHub-Hook-Installation-Target-ID": "1",
            "X-Hub-Signature-256": signature_256(self.secret, delivery.body),
        }
        record = DeliveryRecord(delivery.guid, delivery.event, delivery.action, None)
        self.history.append(record)
        for attempt in range(1, self.attempts + 1):
            try:
                response = await client.post(self.url, content=delivery.body, headers=headers)
            except httpx.HTTPError as exc:
                record.error = f"{type(exc).__name__}: {exc}"
            else:
                record.status, record.error = response.status_code, None
                if response.status_code < 500:
                    return
            await asyncio.sleep(0.2 * attempt)
        log.warning(
            "sandbox_webhook_delivery_failed",
            guid=delivery.guid,
            webhook_event=delivery.event,
            status=record.status,
            error=record.error,
        )
