"""From gate decision to approval record, and from a decided record to the event that tells it."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from medic.events import (
    ApprovalExpired,
    ApprovalExpiredPayload,
    ApprovalGranted,
    ApprovalGrantedPayload,
    ApprovalRejected,
    ApprovalRejectedPayload,
    ApprovalRequested,
    ApprovalRequestedPayload,
    Envelope,
    GateDecided,
    derive_event_id,
)
from medic.services.approval.records import ApprovalRecord, ApprovalStatus, approval_id_for


def record_for(gate: GateDecided, *, now: datetime, timeout: timedelta) -> ApprovalRecord:
    """The pending approval a ``require_approval`` decision asks for (its id derived from the decision)."""
    p = gate.payload
    return ApprovalRecord(
        approval_id=approval_id_for(gate.event_id),
        failure_id=gate.failure_id,
        repository=p.repository,
        run_id=p.run_id,
        action=p.action,
        reasons=p.reasons,
        requested_at=now,
        expires_at=now + timeout,
    )


def request_event(gate: GateDecided, record: ApprovalRecord, *, actor: str) -> ApprovalRequested:
    return ApprovalRequested.answering(
        gate,
        actor=actor,
        payload=ApprovalRequestedPayload(
            approval_id=record.approval_id,
            action=record.action,
            repository=record.repository,
            run_id=record.run_id,
            reasons=record.reasons,
            expires_at=record.expires_at,
        ),
    )


def decision_event(record: ApprovalRecord) -> Envelope:
    """The event of a decided record; its id derives from the approval, so a re-publish is a duplicate."""
    if record.decided_at is None or record.decided_by is None:
        raise ValueError(f"approval {record.approval_id} is not decided")
    common: dict[str, Any] = {
        "event_id": derive_event_id(record.approval_id, "ApprovalDecision", record.requested_at),
        "failure_id": record.failure_id,
        "actor": record.decided_by,
        "occurred_at": record.decided_at,
    }
    if record.status is ApprovalStatus.GRANTED:
        return ApprovalGranted(
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
    if record.status is ApprovalStatus.REJECTED:
        return ApprovalRejected(
            **common,
            payload=ApprovalRejectedPayload(
                approval_id=record.approval_id,
                approver=record.decided_by,
                reason=record.note,
                repository=record.repository,
            ),
        )
    return ApprovalExpired(
        **common,
        payload=ApprovalExpiredPayload(
            approval_id=record.approval_id, expired_at=record.decided_at, repository=record.repository
        ),
    )
