"""Pure mapping from one event to the rows it changes: an audit entry and a failure change.

Nothing here knows SQL or NATS. Events of one failure may be applied out of order (many
handlers run at once, redeliveries come late), so a change never says "set the state";
it says "this state, with this rank, at this time". The store keeps the highest
``(rank, at, event_id)``, which makes the final row independent of application order.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, NamedTuple

from medic.events import (
    AnalysisCompleted,
    ApprovalExpired,
    ApprovalGranted,
    ApprovalRejected,
    ApprovalRequested,
    ConfigReloaded,
    Event,
    FailureDetected,
    GateDecided,
    GateOutcome,
    PolicyChanged,
    RemediationFinished,
    RemediationOutcome,
    RemediationStarted,
)


class FailureState(StrEnum):
    DETECTED = "detected"
    ANALYZED = "analyzed"
    AWAITING_APPROVAL = "awaiting_approval"
    REMEDIATING = "remediating"
    NO_ACTION = "no_action"
    REJECTED = "rejected"
    EXPIRED = "expired"
    REMEDIATION_FAILED = "remediation_failed"
    REMEDIATED = "remediated"


STATE_RANK: Mapping[FailureState, int] = {
    FailureState.DETECTED: 0,
    FailureState.ANALYZED: 1,
    FailureState.AWAITING_APPROVAL: 2,
    FailureState.REMEDIATING: 3,
    FailureState.NO_ACTION: 4,
    FailureState.REJECTED: 4,
    FailureState.EXPIRED: 4,
    FailureState.REMEDIATION_FAILED: 5,
    FailureState.REMEDIATED: 5,
}
"""A late event never moves a failure backwards: a lower rank never replaces a higher one."""

SETTLED_STATES = frozenset(
    {
        FailureState.NO_ACTION,
        FailureState.REJECTED,
        FailureState.EXPIRED,
        FailureState.REMEDIATION_FAILED,
        FailureState.REMEDIATED,
    }
)


@dataclass(frozen=True)
class AuditEntry:
    """One audit row before it is chained (the store adds id, prev_hash and row_hash)."""

    event_id: str
    occurred_at: datetime
    actor: str
    action: str
    outcome: str | None
    failure_id: str
    repository: str | None
    details: dict[str, Any]


_NOTHING: Mapping[str, Any] = {}
"""The default of a change's mappings (shared: nothing changes them)."""


class FailureChange(NamedTuple):
    """What one event says about its failure.

    ``stage`` names the timestamp column this event stamps; ``fields`` belong to that stage
    and are kept from the latest event of the stage. ``identity`` fields (repository, run id)
    only fill gaps, for events that arrive before the FailureDetected that owns them.

    A named tuple, not a dataclass: a replay builds one per event in its worker process and
    again in its writer when the entries cross between them (1.4 us a frozen dataclass of
    these fields, 0.4 us a named tuple). The mappings are never changed once made.
    """

    failure_id: str
    event_id: str
    occurred_at: datetime
    state: FailureState
    stage: str
    stage_at: datetime
    fields: Mapping[str, Any] = _NOTHING
    identity: Mapping[str, Any] = _NOTHING

    @property
    def rank(self) -> int:
        return STATE_RANK[self.state]

    @property
    def settles(self) -> bool:
        return self.state in SETTLED_STATES

    @property
    def shape(self) -> tuple[str, tuple[str, ...], tuple[str, ...], bool]:
        """Changes of one shape share one SQL statement (and one ``executemany``)."""
        return (self.stage, tuple(self.fields), tuple(self.identity), self.settles)


@dataclass(frozen=True)
class Projection:
    audit: AuditEntry
    failure: FailureChange | None
    """None for events about the policy rather than one failure (they are audited only)."""


def project(event: Event) -> Projection:
    """The audit entry and failure change of one event."""
    outcome, repository, change = _MAPPERS[event.event_type](event)
    details: dict[str, Any] = {
        "schema_version": event.schema_version,
        "causation_id": event.causation_id,
        "payload": event.payload.model_dump(mode="json"),
    }
    audit = AuditEntry(
        event_id=event.event_id,
        occurred_at=event.occurred_at,
        actor=event.actor,
        action=event.event_type,
        outcome=outcome,
        failure_id=event.failure_id,
        repository=repository,
        details=details,
    )
    return Projection(audit=audit, failure=change)


def _change(event: Event, state: FailureState, stage: str, **kw: Any) -> FailureChange:
    return FailureChange(
        failure_id=event.failure_id,
        event_id=event.event_id,
        occurred_at=event.occurred_at,
        state=state,
        stage=stage,
        stage_at=kw.pop("stage_at", event.occurred_at),
        **kw,
    )


Mapped = tuple[str | None, str | None, FailureChange | None]


def _detected(e: FailureDetected) -> Mapped:
    p = e.payload
    fields = {
        "repository": p.repository,
        "run_id": p.run_id,
        "run_attempt": p.run_attempt,
        "workflow_name": p.workflow_name,
        "branch": p.branch,
        "head_sha": p.head_sha,
        "html_url": p.html_url,
    }
    return (
        "detected",
        p.repository,
        _change(e, FailureState.DETECTED, "detected_at", stage_at=p.detected_at, fields=fields),
    )


def _analyzed(e: AnalysisCompleted) -> Mapped:
    p = e.payload
    fields = {
        "category": p.category.value,
        "risk": p.risk,
        "confidence": p.confidence,
        "method": p.method.value,
        "fingerprint": p.fingerprint,
        "summary": p.summary,
        "proposed_action": p.proposed_action.kind.value,
    }
    identity = {"repository": p.repository, "run_id": p.run_id, "run_attempt": p.run_attempt}
    change = _change(e, FailureState.ANALYZED, "analyzed_at", fields=fields, identity=identity)
    return p.category.value, p.repository, change


_GATE_STATE = {
    GateOutcome.AUTO_REMEDIATE: FailureState.REMEDIATING,
    GateOutcome.REQUIRE_APPROVAL: FailureState.AWAITING_APPROVAL,
    GateOutcome.NO_ACTION: FailureState.NO_ACTION,
}


def _gate(e: GateDecided) -> Mapped:
    p = e.payload
    fields = {
        "gate_outcome": p.outcome.value,
        "gate_reasons": list(p.reasons),
        "gate_risk": p.risk,
        "risk_threshold": p.risk_threshold,
    }
    identity = {"repository": p.repository, "run_id": p.run_id, "run_attempt": p.run_attempt}
    state = _GATE_STATE[p.outcome]
    if p.dry_run and state is FailureState.REMEDIATING:
        state = FailureState.NO_ACTION  # dry-run: decided as usual, nothing will run
    change = _change(e, state, "decided_at", fields=fields, identity=identity)
    return p.outcome.value, p.repository, change


def _requested(e: ApprovalRequested) -> Mapped:
    p = e.payload
    fields = {"approval_id": p.approval_id, "approval_expires_at": p.expires_at}
    identity = {"repository": p.repository, "run_id": p.run_id}
    change = _change(
        e, FailureState.AWAITING_APPROVAL, "approval_requested_at", fields=fields, identity=identity
    )
    return "requested", p.repository, change


def _granted(e: ApprovalGranted) -> Mapped:
    p = e.payload
    fields = {"approval_id": p.approval_id, "approver": p.approver, "approval_outcome": "granted"}
    identity = {"repository": p.repository, "run_id": p.run_id}
    change = _change(e, FailureState.REMEDIATING, "approval_decided_at", fields=fields, identity=identity)
    return "granted", p.repository, change


def _rejected(e: ApprovalRejected) -> Mapped:
    p = e.payload
    fields = {"approval_id": p.approval_id, "approver": p.approver, "approval_outcome": "rejected"}
    return (
        "rejected",
        _repository_of(p),
        _change(e, FailureState.REJECTED, "approval_decided_at", fields=fields),
    )


def _expired(e: ApprovalExpired) -> Mapped:
    p = e.payload
    fields = {"approval_id": p.approval_id, "approval_outcome": "expired"}
    return (
        "expired",
        _repository_of(p),
        _change(e, FailureState.EXPIRED, "approval_decided_at", fields=fields),
    )


def _started(e: RemediationStarted) -> Mapped:
    p = e.payload
    fields = {"remediation_action": p.action.kind.value}
    identity = {"repository": p.repository, "run_id": p.run_id}
    change = _change(e, FailureState.REMEDIATING, "remediation_started_at", fields=fields, identity=identity)
    return "started", p.repository, change


def _finished(e: RemediationFinished) -> Mapped:
    p = e.payload
    state = (
        FailureState.REMEDIATED
        if p.outcome is RemediationOutcome.SUCCEEDED
        else FailureState.REMEDIATION_FAILED
    )
    fields = {
        "remediation_action": p.action.kind.value,
        "remediation_outcome": p.outcome.value,
        "remediation_detail": p.detail,
        "verified_run_attempt": p.verified_run_attempt,
    }
    identity = {"repository": p.repository, "run_id": p.run_id}
    return p.outcome.value, p.repository, _change(e, state, "settled_at", fields=fields, identity=identity)


def _config(e: ConfigReloaded) -> Mapped:
    return ("applied" if e.payload.changes else "restart_needed"), None, None


def _policy(e: PolicyChanged) -> Mapped:
    p = e.payload
    repository = p.scope if "/" in p.scope else None
    return p.change.value, repository, None


def _partial(e: Event) -> Mapped:
    return "partially_granted", _repository_of(e.payload), None


def _refused(e: Event) -> Mapped:
    return "refused", _repository_of(e.payload), None


def _repository_of(payload: object) -> str | None:
    """Approval decisions do not carry the repository (yet): read it when a later version does.

    It is never looked up from the failures row, which may not be there yet under concurrent
    delivery; a lookup would make the audit row depend on arrival order (and replay differ).
    """
    value = getattr(payload, "repository", None)
    return value if isinstance(value, str) else None


_MAPPERS: dict[str, Callable[[Any], Mapped]] = {
    "FailureDetected": _detected,
    "AnalysisCompleted": _analyzed,
    "GateDecided": _gate,
    "ApprovalRequested": _requested,
    "ApprovalGranted": _granted,
    "ApprovalRejected": _rejected,
    "ApprovalExpired": _expired,
    "RemediationStarted": _started,
    "RemediationFinished": _finished,
    "ConfigReloaded": _config,
    "PolicyChanged": _policy,
    "ApprovalPartiallyGranted": _partial,
    "ApprovalAttemptRefused": _refused,
}
