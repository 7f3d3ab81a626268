"""From gate decision to approval record, and from a decided record to the event that tells it."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from medic.access import Identity
from medic.events import (
    ApprovalAttemptRefused,
    ApprovalAttemptRefusedPayload,
    ApprovalExpired,
    ApprovalExpiredPayload,
    ApprovalGranted,
    ApprovalGrantedPayload,
    ApprovalPartiallyGranted,
    ApprovalPartiallyGrantedPayload,
    ApprovalRejected,
    ApprovalRejectedPayload,
    ApprovalRequested,
    ApprovalRequestedPayload,
    Envelope,
    GateDecided,
    derive_event_id,
)
from medic.services.approval.records import ApprovalRecord, ApprovalStatus, Via, approval_id_for


def record_for(
    gate: GateDecided, *, now: datetime, timeout: timedelta, critical_risk: int = 11
) -> ApprovalRecord:
    """The pending approval a ``require_approval`` decision asks for (its id derived from the decision).

    At or above ``critical_risk`` two distinct people must approve (four-eyes).
    """
    p = gate.payload
    return ApprovalRecord(
        approvals_needed=2 if p.risk >= critical_risk else 1,
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
            approvals_needed=record.approvals_needed,
        ),
    )


def partial_event(record: ApprovalRecord, approver: str) -> ApprovalPartiallyGranted:
    """One of two approvals; the id derives from the approval and the person (a retry is a duplicate)."""
    return ApprovalPartiallyGranted(
        event_id=derive_event_id(
            record.approval_id, f"ApprovalPartiallyGranted/{approver}", record.requested_at
        ),
        failure_id=record.failure_id,
        actor=approver,
        payload=ApprovalPartiallyGrantedPayload(
            approval_id=record.approval_id,
            approver=approver,
            approvals=record.approvals,
            approvals_needed=max(2, record.approvals_needed),
            repository=record.repository,
        ),
    )


def refused_event(
    record: ApprovalRecord, who: Identity, *, via: Via, decision: str, reason: str
) -> ApprovalAttemptRefused:
    """Every refused attempt is its own fact (a fresh id): the audit shows each one."""
    return ApprovalAttemptRefused(
        failure_id=record.failure_id,
        actor=who.principal,
        payload=ApprovalAttemptRefusedPayload(
            approval_id=record.approval_id,
            who=who.principal,
            via=via.value,
            decision="approve" if decision == "approve" else "reject",
            reason=reason,
            repository=record.repository,
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
