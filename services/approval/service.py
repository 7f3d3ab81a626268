"""Approval wiring: GateDecided(require_approval) -> ApprovalRequested; people decide over HTTP
(later Slack); undecided requests expire. Decisions go on the bus as events with who and why."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Header, HTTPException
from prometheus_client import Counter, Histogram

from medic.bus import Bus, Delivery
from medic.config import Settings
from medic.events import (
    ActionKind,
    ApprovalExpired,
    ApprovalExpiredPayload,
    ApprovalGranted,
    ApprovalGrantedPayload,
    ApprovalRejected,
    ApprovalRejectedPayload,
    ApprovalRequested,
    ApprovalRequestedPayload,
    Envelope,
    Event,
    GateDecided,
    GateOutcome,
    derive_event_id,
    utc_now,
)
from medic.runtime import Service
from medic.services.approval.records import (
    ApprovalConflict,
    ApprovalRecord,
    ApprovalStatus,
    DecisionRequest,
    approval_id_for,
)
from medic.services.approval.store import ApprovalStore
from medic.telemetry import logger

log = logger(__name__)
DECISIONS = Counter("medic_approvals_total", "Approval outcomes", ["status"])
WAIT_SECONDS = Histogram(
    "medic_approval_wait_seconds",
    "Time from request to decision",
    buckets=(10, 60, 300, 900, 3600, 4 * 3600, 24 * 3600, 7 * 24 * 3600),
)


class ApprovalService(Service):
    name = "approval"
    consumes = ("GateDecided",)

    def __init__(self, *, settings: Settings, bus: Bus, sweep_seconds: float = 5.0) -> None:
        self.settings = settings
        self.bus = bus
        self.sweep_seconds = sweep_seconds
        self._store: ApprovalStore | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    @property
    def store(self) -> ApprovalStore:
        if self._store is None:
            raise RuntimeError("approval service not started")
        return self._store

    async def start(self) -> None:
        self._store = await ApprovalStore.open(self.bus.js, f"{self.bus.topology.stream}_approvals")
        await self.reconcile()
        self._stopping.clear()
        self._sweeper = asyncio.create_task(self._sweep_forever(), name="approval-expiry")

    async def stop(self) -> None:
        """Stop on a flag, not cancel(): nats-py swallows CancelledError mid-publish."""
        self._stopping.set()
        if self._sweeper is not None:
            await self._sweeper
            self._sweeper = None

    def ready(self) -> bool:
        return self._store is not None

    async def handle(self, event: Event, delivery: Delivery) -> None:
        if not isinstance(event, GateDecided) or event.payload.outcome is not GateOutcome.REQUIRE_APPROVAL:
            return
        gate = event.payload
        now = utc_now()
        record = ApprovalRecord(
            approval_id=approval_id_for(event.event_id),
            failure_id=event.failure_id,
            repository=gate.repository,
            run_id=gate.run_id,
            action=gate.action,
            reasons=gate.reasons,
            requested_at=now,
            expires_at=now + timedelta(hours=self.settings.approval_timeout_hours),
        )
        if not await self.store.create(record):
            found = await self.store.get(record.approval_id)
            record = found[0] if found else record
        await self.bus.publish(
            ApprovalRequested.answering(
                event,
                actor=self.name,
                payload=ApprovalRequestedPayload(
                    approval_id=record.approval_id,
                    action=record.action,
                    repository=record.repository,
                    run_id=record.run_id,
                    reasons=record.reasons,
                    expires_at=record.expires_at,
                ),
            )
        )

    async def decide(
        self,
        approval_id: str,
        status: ApprovalStatus,
        *,
        by: str,
        note: str = "",
        chosen_action: ActionKind | None = None,
    ) -> ApprovalRecord:
        found = await self.store.get(approval_id)
        if found is None:
            raise KeyError(approval_id)
        record, revision = found
        decided = record.decide(status, by=by, at=utc_now(), note=note, chosen_action=chosen_action)
        revision = await self.store.replace(decided, revision)
        await self._publish_decision(decided)
        await self.store.replace(decided.model_copy(update={"published": True}), revision)
        DECISIONS.labels(status.value).inc()
        if decided.decided_at is not None:
            WAIT_SECONDS.observe((decided.decided_at - decided.requested_at).total_seconds())
        return decided

    async def _publish_decision(self, record: ApprovalRecord) -> None:
        assert record.decided_at is not None and record.decided_by is not None
        common = {
            "event_id": derive_event_id(record.approval_id, "ApprovalDecision", record.requested_at),
            "failure_id": record.failure_id,
            "actor": record.decided_by,
            "occurred_at": record.decided_at,
        }
        event: Envelope
        if record.status is ApprovalStatus.GRANTED:
            event = ApprovalGranted(
                **common,
                payload=ApprovalGrantedPayload(
                    approval_id=record.approval_id,
                    approver=record.decided_by,
                    action=record.action,
                    repository=record.repository,
                    run_id=record.run_id,
                    comment=record.note,
                ),
            )
        elif record.status is ApprovalStatus.REJECTED:
            event = ApprovalRejected(
                **common,
                payload=ApprovalRejectedPayload(
                    approval_id=record.approval_id,
                    approver=record.decided_by,
                    reason=record.note,
                    repository=record.repository,
                ),
            )
        else:
            event = ApprovalExpired(
                **common,
                payload=ApprovalExpiredPayload(
                    approval_id=record.approval_id, expired_at=record.decided_at, repository=record.repository
                ),
            )
        await self.bus.publish(event)

    async def reconcile(self) -> None:
        """Publish decisions recorded before a crash; expire what is past its time."""
        now = utc_now()
        async for record, revision in self.store.all():
            if record.status is not ApprovalStatus.PENDING and not record.published:
                await self._publish_decision(record)
                await self.store.replace(record.model_copy(update={"published": True}), revision)
            elif record.status is ApprovalStatus.PENDING and now >= record.expires_at:
                with contextlib.suppress(ApprovalConflict):
                    await self.decide(record.approval_id, ApprovalStatus.EXPIRED, by=self.name)

    async def _sweep_forever(self) -> None:
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.sweep_seconds)
                return
            try:
                await self.reconcile()
            except Exception as exc:  # keep sweeping; the next pass retries
                log.warning("approval_sweep_failed", error=str(exc))

    def router(self) -> APIRouter:
        router = APIRouter(prefix="/api/approvals", tags=["approvals"])

        def authorised(authorization: Annotated[str | None, Header()] = None) -> None:
            token = self.settings.api_token
            if token is None:
                return
            expected = f"Bearer {token.get_secret_value()}".encode()
            # constant-time: the comparison's duration must not tell how much of a guess was right
            if not hmac.compare_digest((authorization or "").encode(), expected):
                raise HTTPException(401, "approve/reject needs Authorization: Bearer <MEDIC_API_TOKEN>")

        @router.get("")
        async def list_approvals(status: ApprovalStatus | None = None) -> list[ApprovalRecord]:
            return [r async for r, _ in self.store.all() if status is None or r.status is status]

        async def act(approval_id: str, status: ApprovalStatus, body: DecisionRequest) -> ApprovalRecord:
            try:
                return await self.decide(
                    approval_id, status, by=body.approver, note=body.comment, chosen_action=body.action
                )
            except KeyError:
                raise HTTPException(404, f"no approval {approval_id!r}") from None
            except ApprovalConflict as exc:
                raise HTTPException(409, str(exc)) from None

        @router.post("/{approval_id}/approve", dependencies=[Depends(authorised)])
        async def approve(approval_id: str, body: DecisionRequest) -> ApprovalRecord:
            return await act(approval_id, ApprovalStatus.GRANTED, body)

        @router.post("/{approval_id}/reject", dependencies=[Depends(authorised)])
        async def reject(approval_id: str, body: DecisionRequest) -> ApprovalRecord:
            return await act(approval_id, ApprovalStatus.REJECTED, body)

        return router
