"""What the thread's parent message shows about a failure, gathered from its events.

Events of one failure may arrive late or twice (replicas, redeliveries), so gathering is a
merge: each event fills the fields it owns, and the stage only moves forward by rank, as in
the projector. The same events in any order give the same facts.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from medic.events import (
    AnalysisCompleted,
    ApprovalExpired,
    ApprovalGranted,
    ApprovalRejected,
    ApprovalRequested,
    Event,
    FailureDetected,
    GateDecided,
    GateOutcome,
    RemediationFinished,
    RemediationOutcome,
    RemediationStarted,
)

MAX_EXCERPT_LINES = 8


class Stage(StrEnum):
    DETECTED = "detected"
    ANALYSED = "analysed"
    AWAITING_APPROVAL = "awaiting_approval"
    APPROVED = "approved"
    REMEDIATING = "remediating"
    FIXED = "fixed"
    FIX_FAILED = "fix_failed"
    REJECTED = "rejected"
    EXPIRED = "expired"
    NO_ACTION = "no_action"


STAGE_RANK = {
    Stage.DETECTED: 0,
    Stage.ANALYSED: 1,
    Stage.AWAITING_APPROVAL: 2,
    Stage.APPROVED: 3,
    Stage.REMEDIATING: 4,
    Stage.NO_ACTION: 5,
    Stage.REJECTED: 5,
    Stage.EXPIRED: 5,
    Stage.FIX_FAILED: 6,
    Stage.FIXED: 6,
}


class Facts(BaseModel):
    model_config = ConfigDict(frozen=True)

    failure_id: str
    stage: Stage = Stage.DETECTED
    repository: str = ""
    run_id: int | None = None
    run_attempt: int | None = None
    workflow: str = ""
    branch: str = ""
    head_sha: str = ""
    commit_message: str = ""
    run_url: str = ""
    jobs: tuple[str, ...] = ()
    category: str = ""
    risk: int | None = None
    confidence: float | None = None
    action: str = ""
    summary: str = ""
    excerpt: tuple[str, ...] = ()
    reasons: tuple[str, ...] = ()
    approval_id: str = ""
    decided_by: str = ""
    detail: str = ""

    def merge(self, event: Event) -> Facts:
        update = _fields_of(event)
        stage = update.pop("stage", None)
        if isinstance(stage, Stage) and STAGE_RANK[stage] >= STAGE_RANK[self.stage]:
            update["stage"] = stage
        return self.model_copy(update=update)


def _fields_of(event: Event) -> dict[str, object]:
    match event:
        case FailureDetected(payload=p):
            return {
                "repository": p.repository,
                "run_id": p.run_id,
                "run_attempt": p.run_attempt,
                "workflow": p.workflow_name,
                "branch": p.branch,
                "head_sha": p.head_sha,
                "commit_message": p.commit_message.splitlines()[0] if p.commit_message else "",
                "run_url": p.html_url,
                "jobs": tuple(j.name for j in p.failed_jobs[:10]),
                "stage": Stage.DETECTED,
            }
        case AnalysisCompleted(payload=p):
            return {
                "repository": p.repository,
                "category": p.category.value,
                "risk": p.risk,
                "confidence": p.confidence,
                "action": p.proposed_action.kind.value,
                "summary": p.summary,
                "excerpt": tuple(f"{line.line:>5}| {line.text}" for line in p.excerpt[-MAX_EXCERPT_LINES:]),
                "stage": Stage.ANALYSED,
            }
        case GateDecided(payload=p):
            stage = {
                GateOutcome.NO_ACTION: Stage.NO_ACTION,
                GateOutcome.REQUIRE_APPROVAL: Stage.AWAITING_APPROVAL,
                GateOutcome.AUTO_REMEDIATE: Stage.ANALYSED,
            }[p.outcome]
            return {"reasons": p.reasons, "risk": p.risk, "action": p.action.kind.value, "stage": stage}
        case ApprovalRequested(payload=p):
            return {"approval_id": p.approval_id, "stage": Stage.AWAITING_APPROVAL}
        case ApprovalGranted(payload=p):
            return {"decided_by": p.approver, "action": p.action.kind.value, "stage": Stage.APPROVED}
        case ApprovalRejected(payload=p):
            return {"decided_by": p.approver, "detail": p.reason, "stage": Stage.REJECTED}
        case ApprovalExpired():
            return {"stage": Stage.EXPIRED}
        case RemediationStarted(payload=p):
            return {"action": p.action.kind.value, "stage": Stage.REMEDIATING}
        case RemediationFinished(payload=p):
            fixed = p.outcome is RemediationOutcome.SUCCEEDED
            return {"detail": p.detail, "stage": Stage.FIXED if fixed else Stage.FIX_FAILED}
    return {}
