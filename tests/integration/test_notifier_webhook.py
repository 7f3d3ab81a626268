"""The generic outgoing webhook: every stage as JSON signed with HMAC-SHA256, retried from the
durable consumer while the receiver fails, refused without retry when it says 4xx."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from fastapi import FastAPI, Request, Response

from medic.bus import Bus
from medic.config import ConfigError, load_settings
from medic.events import GateOutcome
from medic.runtime import HttpServer, ServiceHost
from medic.services.notifier.service import NotifierService
from medic.services.notifier.webhook import SIGNATURE_HEADER, WebhookSink
from tests.slack_events import story

SECRET = "webhook-shared-secret"


class Receiver:
    def __init__(self) -> None:
        self.app = FastAPI()
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.fail_next = 0
        self.status = 200

        @self.app.post("/hook")
        async def hook(request: Request) -> Response:
            if self.fail_next > 0:
                self.fail_next -= 1
                return Response(status_code=503)
            self.received.append((dict(request.headers), await request.body()))
            return Response(status_code=self.status)


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[Receiver, str]]:
    target = Receiver()
    server = HttpServer(target.app)
    await server.start()
    yield target, f"{server.url}/hook"
    await server.stop()


async def test_every_stage_arrives_signed_even_through_receiver_outages(
    bus: Bus, receiver: tuple[Receiver, str]
) -> None:
    target, url = receiver
    target.fail_next = 3
    settings = load_settings(notify_webhook_urls=url, notify_webhook_secret=SECRET)
    sink = WebhookSink(urls=settings.notify_webhook_urls, secret=SECRET)
    host = ServiceHost(
        settings=settings,
        bus=bus,
        services=[NotifierService(settings=settings, webhook=sink, write=lambda _: None)],
    )
    await host.start()
    try:
        events = story(run_id=7, outcome=GateOutcome.AUTO_REMEDIATE)
        for event in events:
            await bus.publish(event)
        for _ in range(200):
            if len({h["x-medic-event-id"] for h, _ in target.received}) == len(events):
                break
            await asyncio.sleep(0.1)
    finally:
        await host.stop()
    ids = {h["x-medic-event-id"] for h, _ in target.received}
    assert ids == {e.event_id for e in events}
    for headers, body in target.received:
        expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(headers[SIGNATURE_HEADER.lower()], expected)
        document: dict[str, Any] = json.loads(body)
        assert document["event_id"] == headers["x-medic-event-id"] and document["summary"]


async def test_a_refusing_receiver_is_not_retried(receiver: tuple[Receiver, str]) -> None:
    target, url = receiver
    target.status = 400
    sink = WebhookSink(urls=(url,), secret=SECRET)
    await sink.send(story(run_id=8)[0])  # 4xx: logged, no exception, no retry
    assert len(target.received) == 1
    await sink.aclose()


def test_webhook_settings_are_checked() -> None:
    with pytest.raises(ConfigError, match="notify_webhook_secret"):
        load_settings(notify_webhook_urls="https://hooks.example/x")
    with pytest.raises(ConfigError, match="notify_webhook_urls"):
        load_settings(notify_webhook_urls="file:///etc/passwd", notify_webhook_secret="s")
    with pytest.raises(ConfigError, match="is not an http"):
        load_settings(notify_webhook_urls="a,b", notify_webhook_secret="s")
