"""A generic outgoing webhook beside Slack: every stage as signed JSON, for receivers such as
Teams workflows, PagerDuty-style alert intake or a team's own bot.

Body: ``{event_id, event_type, failure_id, occurred_at, summary, payload}``. Headers:
``X-Medic-Event-Id`` (receivers deduplicate on it: delivery is at least once) and
``X-Medic-Signature-256: sha256=<hex HMAC-SHA256 of the raw body with the shared secret>``,
the same scheme as GitHub's webhooks. 429, 5xx and transport failures are retried by the
durable consumer; another 4xx means the receiver refuses the message, which is logged.
"""

from __future__ import annotations

import hashlib
import hmac
import json

import httpx

from medic.events import Event
from medic.services.notifier.render import describe
from medic.telemetry import logger

log = logger(__name__)
SIGNATURE_HEADER = "X-Medic-Signature-256"


class WebhookUnavailable(Exception):
    """The receiver did not take the message (429, 5xx, no answer): try again later."""


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def webhook_body(event: Event) -> bytes:
    return json.dumps(
        {
            "event_id": event.event_id,
            "event_type": event.event_type,
            "failure_id": event.failure_id,
            "occurred_at": event.occurred_at.isoformat(),
            "summary": describe(event),
            "payload": event.payload.model_dump(mode="json"),
        },
        separators=(",", ":"),
    ).encode()


class WebhookSink:
    def __init__(self, *, urls: tuple[str, ...], secret: str, timeout: float = 10.0) -> None:
        self.urls = urls
        self.secret = secret
        self.http = httpx.AsyncClient(timeout=timeout, follow_redirects=False)

    async def aclose(self) -> None:
        await self.http.aclose()

    async def send(self, event: Event) -> None:
        body = webhook_body(event)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "ci-medic",
            "X-Medic-Event-Id": event.event_id,
            "X-Medic-Event-Type": event.event_type,
            SIGNATURE_HEADER: sign(self.secret, body),
        }
        for url in self.urls:
            try:
                answer = await self.http.post(url, content=body, headers=headers)
            except httpx.HTTPError as exc:
                raise WebhookUnavailable(f"{url}: {type(exc).__name__}") from None
            if answer.status_code == 429 or answer.status_code >= 500:
                raise WebhookUnavailable(f"{url}: HTTP {answer.status_code}")
            if answer.status_code >= 400:
                log.warning("webhook_refused", url=url, status=answer.status_code, event_id=event.event_id)
