"""Notifier wiring: every event in; one Slack thread per failure out, a signed JSON webhook
per stage when configured, and a log line per stage.

Without Slack configured (no bot token and no sandbox) it only writes the log lines.
"""

from __future__ import annotations

from collections.abc import Callable

from medic.bus import Bus, Delivery
from medic.config import Settings
from medic.events import Event
from medic.runtime import EVERY_EVENT, Service
from medic.services.notifier.render import describe
from medic.services.notifier.teller import ThreadTeller
from medic.services.notifier.threads import ThreadStore
from medic.services.notifier.webhook import WebhookSink
from medic.slack.client import SlackClient
from medic.telemetry import logger

log = logger(__name__)


class NotifierService(Service):
    name = "notifier"
    consumes = EVERY_EVENT
    concurrency = 8
    """Slack takes about one message a second per channel: more handlers would only queue."""

    def __init__(
        self,
        *,
        settings: Settings | None = None,
        bus: Bus | None = None,
        slack: SlackClient | None = None,
        webhook: WebhookSink | None = None,
        write: Callable[[str], None] | None = None,
    ) -> None:
        self.webhook = webhook
        self.settings = settings
        self.bus = bus
        self.slack = slack
        self.write = write or (lambda line: log.info("stage", line=line))
        self.teller: ThreadTeller | None = None

    async def start(self) -> None:
        if self.slack is None or self.bus is None or self.settings is None:
            return
        store = await ThreadStore.open(self.bus.js, self.bus.topology)
        self.teller = ThreadTeller(settings=self.settings, slack=self.slack, store=store)

    def ready(self) -> bool:
        return self.slack is None or self.teller is not None

    async def handle(self, event: Event, delivery: Delivery) -> None:
        if delivery.num_delivered == 1:
            self.write(describe(event))
        if self.teller is not None:
            await self.teller.tell(event, delivery)
        if self.webhook is not None:
            await self.webhook.send(event)

    async def stop(self) -> None:
        if self.webhook is not None:
            await self.webhook.aclose()
