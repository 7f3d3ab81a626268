"""Executor wiring: GateDecided(auto_remediate) or ApprovalGranted in; RemediationStarted and
RemediationFinished out. The order is read by :mod:`.orders` and carried out by :mod:`.remediation`."""

from __future__ import annotations

from medic.bus import Bus, Deferred, Delivery
from medic.config import Settings
from medic.consumer import RATE_LIMIT_DEFERRALS
from medic.events import ApprovalGranted, Event, GateDecided, RemediationFinished, RemediationStarted
from medic.github.client import GitHubClient
from medic.github.errors import RateLimitExhausted
from medic.runtime import Service
from medic.services.executor.orders import order_from
from medic.services.executor.remediation import Remediation
from medic.services.executor.store import IntentStore, open_intents


class ExecutorService(Service):
    name = "executor"
    consumes = (GateDecided, ApprovalGranted)
    produces = (RemediationStarted, RemediationFinished)
    max_deferrals = RATE_LIMIT_DEFERRALS  # waiting for GitHub's reset is not a failed try

    def __init__(self, *, settings: Settings, bus: Bus, github: GitHubClient) -> None:
        self.settings = settings
        self.bus = bus
        self.github = github
        self._remediation: Remediation | None = None

    async def start(self) -> None:
        self._remediation = Remediation(
            github=self.github,
            intents=await open_intents(self.bus.js, self.bus.topology),
            publish=self.bus.publish,
            verify_timeout_seconds=self.settings.verify_timeout_seconds,
            actor=self.name,
        )

    def ready(self) -> bool:
        return self._remediation is not None

    @property
    def remediation(self) -> Remediation:
        if self._remediation is None:
            raise RuntimeError("executor not started")
        return self._remediation

    @property
    def intents(self) -> IntentStore:
        return self.remediation.intents

    async def handle(self, event: Event, delivery: Delivery) -> None:
        order = order_from(event)
        if order is None:
            return
        try:
            await self.remediation.carry_out(order, heartbeat=delivery.in_progress)
        except RateLimitExhausted as exc:
            if delivery.num_delivered < self.settings.max_deliver + self.max_deferrals:
                raise Deferred(f"GitHub rate limit: {exc}", delay_seconds=exc.seconds_until_reset()) from exc
            await self.remediation.give_up(
                order, f"GitHub's rate limit stayed spent through every retry: {exc}"
            )
