"""Approval wiring: GateDecided(require_approval) in; ApprovalRequested, then Granted/Rejected/Expired out.

People decide in Slack (:mod:`.slack`), over HTTP (:mod:`.http`) or with ``medic approve``;
the desk (:mod:`.desk`) records each decision before
publishing it; the sweeper (:mod:`.expiry`) expires undecided requests and finishes what a
crash interrupted.
"""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter

from medic.bus import Bus, Delivery
from medic.config import Settings
from medic.events import (
    ApprovalAttemptRefused,
    ApprovalExpired,
    ApprovalGranted,
    ApprovalPartiallyGranted,
    ApprovalRejected,
    ApprovalRequested,
    Event,
    GateDecided,
    GateOutcome,
)
from medic.runtime import Service
from medic.services.approval.approvers import ApproverPolicy
from medic.services.approval.desk import ApprovalDesk
from medic.services.approval.expiry import Sweeper
from medic.services.approval.http import approval_router
from medic.services.approval.slack import SlackApprovals
from medic.services.approval.store import open_approvals
from medic.slack.client import SlackClient


class ApprovalService(Service):
    name = "approval"
    consumes = (GateDecided,)
    produces = (
        ApprovalRequested,
        ApprovalGranted,
        ApprovalRejected,
        ApprovalExpired,
        ApprovalPartiallyGranted,
        ApprovalAttemptRefused,
    )

    def __init__(
        self, *, settings: Settings, bus: Bus, sweep_seconds: float = 5.0, slack: SlackClient | None = None
    ) -> None:
        self.settings = settings
        self.bus = bus
        self.slack = slack
        self.slack_approvals: SlackApprovals | None = None
        if (
            slack is not None
            and settings.slack_bot_token is not None
            and (settings.slack_signing_secret is not None or settings.slack_app_token is not None)
        ):
            self.slack_approvals = SlackApprovals(settings=settings, desk=lambda: self.desk, slack=slack)
        self.sweep_seconds = sweep_seconds
        self._desk: ApprovalDesk | None = None
        self._sweeper: Sweeper | None = None

    @property
    def desk(self) -> ApprovalDesk:
        if self._desk is None:
            raise RuntimeError("approval service not started")
        return self._desk

    async def start(self) -> None:
        self._desk = ApprovalDesk(
            store=await open_approvals(self.bus.js, self.bus.topology),
            publish=self.bus.publish,
            timeout=timedelta(hours=self.settings.approval_timeout_hours),
            actor=self.name,
            approvers=ApproverPolicy(self.settings, self.slack),
            critical_risk=self.settings.critical_risk,
        )
        await self._desk.reconcile()
        self._sweeper = Sweeper(self._desk.reconcile, every_seconds=self.sweep_seconds)
        self._sweeper.start()
        if self.slack_approvals is not None:
            await self.slack_approvals.connect()

    async def stop(self) -> None:
        if self.slack_approvals is not None:
            await self.slack_approvals.close()
        if self._sweeper is not None:
            await self._sweeper.stop()
            self._sweeper = None

    def ready(self) -> bool:
        return self._desk is not None

    async def handle(self, event: Event, delivery: Delivery) -> None:
        if isinstance(event, GateDecided) and event.payload.outcome is GateOutcome.REQUIRE_APPROVAL:
            await self.desk.request(event)

    def router(self) -> APIRouter:
        router = APIRouter()
        router.include_router(approval_router(desk=lambda: self.desk, settings=self.settings))
        if self.slack_approvals is not None and self.slack_approvals.http_mode:
            router.include_router(self.slack_approvals.router())
        return router
