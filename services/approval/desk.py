"""The approval desk: opens requests, takes decisions, and finishes what a crash interrupted.

No dual write is left unreconciled: a decision is first written to the record (status, who,
when, ``published=False``), then published, then marked published. A crash in between is
found by :meth:`ApprovalDesk.reconcile`, which publishes the recorded decision (its event id
is derived, so a second publish is dropped as a duplicate) and expires what is past its time.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from datetime import timedelta

from prometheus_client import Counter, Histogram

from medic.access import Identity, IdentitySource
from medic.events import ActionKind, ApprovalRequested, Envelope, GateDecided, utc_now
from medic.records import RecordConflict
from medic.services.approval.approvers import ApproverPolicy
from medic.services.approval.decisions import (
    decision_event,
    partial_event,
    record_for,
    refused_event,
    request_event,
)
from medic.services.approval.records import (
    ApprovalConflict,
    ApprovalForbidden,
    ApprovalRecord,
    ApprovalStatus,
    Via,
)
from medic.services.approval.store import ApprovalStore

DECISIONS = Counter("medic_approvals_total", "Approval outcomes", ["status"])
WAIT_SECONDS = Histogram(
    "medic_approval_wait_seconds",
    "Time from request to decision",
    buckets=(10, 60, 300, 900, 3600, 4 * 3600, 24 * 3600, 7 * 24 * 3600),
)

REFUSED = Counter("medic_approval_refusals_total", "Approve/reject attempts by non-approvers", ["via"])

Publish = Callable[[Envelope], Awaitable[object]]


class ApprovalDesk:
    def __init__(
        self,
        *,
        store: ApprovalStore,
        publish: Publish,
        timeout: timedelta,
        actor: str,
        approvers: ApproverPolicy | None = None,
        critical_risk: int = 11,
    ) -> None:
        self.store = store
        self.publish = publish
        self.timeout = timeout
        self.actor = actor
        self.approvers = approvers
        self.critical_risk = critical_risk

    async def request(self, gate: GateDecided) -> ApprovalRequested:
        """Open (or, on redelivery, find) the approval a gate decision asks for, and announce it."""
        record = record_for(gate, now=utc_now(), timeout=self.timeout, critical_risk=self.critical_risk)
        if not await self.store.create(record.approval_id, record):
            found = await self.store.get(record.approval_id)
            record = found.record if found else record
        event = request_event(gate, record, actor=self.actor)
        await self.publish(event)
        return event

    async def pending(self, status: ApprovalStatus | None = None) -> list[ApprovalRecord]:
        return [v.record async for _, v in self.store.items() if status is None or v.record.status is status]

    async def decide(
        self,
        approval_id: str,
        status: ApprovalStatus,
        *,
        by: str | Identity,
        via: Via = Via.WEB,
        note: str = "",
        chosen_action: ActionKind | None = None,
    ) -> ApprovalRecord:
        """Record, publish, mark published; the same rules for Slack, the web API and the CLI.

        KeyError: no such approval; ApprovalForbidden: not an approver (the attempt is published
        as ApprovalAttemptRefused); ApprovalConflict: not pending, or four-eyes wants another person.
        A first approval of two is recorded and published as ApprovalPartiallyGranted.
        """
        who = by if isinstance(by, Identity) else Identity(source=IdentitySource.UNVERIFIED, subject=by)
        name = by.principal if isinstance(by, Identity) else by
        for _ in range(3):  # a concurrent first approval of a four-eyes request: read again
            found = await self.store.get(approval_id)
            if found is None:
                raise KeyError(approval_id)
            await self.authorise(found.record, who, status, via=via)
            record = found.record
            now = utc_now()
            if status is ApprovalStatus.GRANTED and not record.complete_with_one_more:
                partial = record.endorse(name, at=now)
                try:
                    await self.store.replace(approval_id, partial, found.revision)
                except RecordConflict:
                    continue
                await self.publish(partial_event(partial, name))
                return partial
            if status is ApprovalStatus.GRANTED:
                record = record.endorse(name, at=now)
            decided = record.decide(status, by=name, at=now, note=note, chosen_action=chosen_action)
            return await self._commit(decided, found.revision)
        raise ApprovalConflict(f"approval {approval_id} kept changing; try again")

    async def authorise(
        self, record: ApprovalRecord, who: Identity, status: ApprovalStatus, *, via: Via = Via.WEB
    ) -> None:
        """Raise ApprovalForbidden (and publish the refused attempt) unless ``who`` may decide."""
        if self.approvers is None or status is ApprovalStatus.EXPIRED:
            return
        why = await self.approvers.refusal(who, record.repository)
        if why is None:
            return
        decision = "approve" if status is ApprovalStatus.GRANTED else "reject"
        await self.publish(refused_event(record, who, via=via, decision=decision, reason=why))
        REFUSED.labels(via.value).inc()
        raise ApprovalForbidden(why)

    async def _commit(self, decided: ApprovalRecord, revision: int) -> ApprovalRecord:
        approval_id = decided.approval_id
        try:
            revision = await self.store.replace(approval_id, decided, revision)
        except RecordConflict:
            raise ApprovalConflict(f"approval {approval_id} was decided concurrently") from None
        await self.publish(decision_event(decided))
        await self.store.replace(approval_id, decided.model_copy(update={"published": True}), revision)
        DECISIONS.labels(decided.status.value).inc()
        if decided.decided_at is not None:
            WAIT_SECONDS.observe((decided.decided_at - decided.requested_at).total_seconds())
        return decided

    async def reconcile(self) -> None:
        """Publish decisions recorded before a crash; expire what is past its time."""
        now = utc_now()
        async for key, found in self.store.items():
            record = found.record
            if record.status is not ApprovalStatus.PENDING and not record.published:
                await self.publish(decision_event(record))
                with contextlib.suppress(RecordConflict):  # a replica finished it meanwhile
                    await self.store.replace(
                        key, record.model_copy(update={"published": True}), found.revision
                    )
            elif record.status is ApprovalStatus.PENDING and now >= record.expires_at:
                with contextlib.suppress(ApprovalConflict):
                    await self.decide(record.approval_id, ApprovalStatus.EXPIRED, by=self.actor)
