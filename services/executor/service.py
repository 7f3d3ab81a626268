"""Executor wiring: GateDecided(auto_remediate) or ApprovalGranted in; RemediationStarted and
RemediationFinished out. The order is read by :mod:`.orders`, carried out by :mod:`.remediation`,
and once its action is sent it waits for CI on the executor's own work stream (:mod:`.waiting`)."""

from __future__ import annotations

from medic.bus import Bus, Deferred, Delivery
from medic.config import Settings
from medic.consumer import RATE_LIMIT_DEFERRALS
from medic.events import ApprovalGranted, Event, GateDecided, RemediationFinished, RemediationStarted
from medic.github.client import GitHubClient
from medic.github.errors import RateLimitExhausted
from medic.runtime import Service
from medic.services.executor.orders import Order, order_from
from medic.services.executor.remediation import Remediation
from medic.services.executor.store import IntentStore, open_intents
from medic.services.executor.waiting import CiWait


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
        self._wait: CiWait | None = None

    async def start(self) -> None:
        self.github.warm()
        wait = CiWait(
            self.bus,
            look=self._look,
            within_seconds=lambda: self.settings.verify_timeout_seconds,
            max_deliver=self.settings.max_deliver,
        )
        self._remediation = Remediation(
            github=self.github,
            intents=await open_intents(self.bus.js, self.bus.topology),
            publish=self.bus.publish,
            wait_for_ci=wait.enqueue,
            actor=self.name,
        )
        await wait.start()
        self._wait = wait

    async def stop(self) -> None:
        if self._wait is not None:
            await self._wait.stop()

    def ready(self) -> bool:
        return self._remediation is not None and self._wait is not None and self._wait.running

    async def _look(
        self, order: Order, *, waited_seconds: float, within_seconds: float, last_look: bool
    ) -> bool:
        return await self.remediation.look(
            order, waited_seconds=waited_seconds, within_seconds=within_seconds, last_look=last_look
        )

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
            await self.remediation.carry_out(order)
        except RateLimitExhausted as exc:
            if delivery.num_delivered < self.settings.max_deliver + self.max_deferrals:
                raise Deferred(f"GitHub rate limit: {exc}", delay_seconds=exc.seconds_until_reset()) from exc
            await self.remediation.give_up(
                order, f"GitHub's rate limit stayed spent through every retry: {exc}"
            )
