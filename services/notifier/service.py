"""Notifier wiring: every event in, one line per stage out (Slack threads come later)."""

from __future__ import annotations

from collections.abc import Callable

from medic.bus import Delivery
from medic.events import Event
from medic.runtime import EVERY_EVENT, Service
from medic.services.notifier.render import describe
from medic.telemetry import logger

log = logger(__name__)


class NotifierService(Service):
    name = "notifier"
    consumes = EVERY_EVENT

    def __init__(self, *, write: Callable[[str], None] | None = None) -> None:
        self.write = write or (lambda line: log.info("stage", line=line))

    async def handle(self, event: Event, delivery: Delivery) -> None:
        self.write(describe(event))
