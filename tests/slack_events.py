"""A failure's events as the pipeline publishes them, for the Slack tests (one causal chain)."""

from __future__ import annotations

import uuid
from datetime import timedelta

from medic.events import (
    ActionKind,
    AnalysisCompleted,
    AnalysisCompletedPayload,
    AnalysisMethod,
    ApprovalRequested,
    ApprovalRequestedPayload,
    Category,
    Envelope,
    ExcerptLine,
    FailedJob,
    FailureDetected,
    FailureDetectedPayload,
    GateDecided,
    GateDecidedPayload,
    GateOutcome,
    ProposedAction,
    RemediationFinished,
    RemediationFinishedPayload,
    RemediationOutcome,
    RemediationStarted,
    RemediationStartedPayload,
    derive_failure_id,
    utc_now,
)

REPO = "octo-org/billing-api"


def story(
    *,
    run_id: int,
    outcome: GateOutcome = GateOutcome.NO_ACTION,
    risk: int = 5,
    branch: str = "feature/x",
    commit: str = "Fix the thing",
    repository: str = REPO,
    category: Category = Category.COMPILE,
) -> list[Envelope]:
    """FailureDetected -> AnalysisCompleted -> GateDecided [-> ApprovalRequested | Remediation*]."""
    failure_id = derive_failure_id(repository, run_id, 1)
    detected = FailureDetected(
        failure_id=failure_id,
        actor="monitor",
        payload=FailureDetectedPayload(
            repository=repository,
            run_id=run_id,
            run_attempt=1,
            workflow_name="CI",
            branch=branch,
            head_sha="0123456789abcdef",
            commit_message=commit,
            html_url=f"https://github.com/{repository}/actions/runs/{run_id}",
            detected_at=utc_now(),
            failed_jobs=(FailedJob(job_id=1, name="build"),),
        ),
    )
    action = ProposedAction(
        kind=ActionKind.NONE if outcome is GateOutcome.NO_ACTION else ActionKind.RERUN_FAILED_JOBS
    )
    analysed = AnalysisCompleted.answering(
        detected,
        actor="analyzer",
        payload=AnalysisCompletedPayload(
            repository=repository,
            run_id=run_id,
            run_attempt=1,
            category=category,
            risk=risk,
            confidence=0.9,
            proposed_action=action,
            method=AnalysisMethod.RULES,
            fingerprint="f" * 16,
            summary="src/main.rs: mismatched types",
            excerpt=(
                ExcerptLine(line=10, text="error[E0308]: mismatched types"),
                ExcerptLine(line=11, text="  --> src/main.rs:3:5"),
            ),
        ),
    )
    gate = GateDecided.answering(
        analysed,
        actor="safety-gate",
        payload=GateDecidedPayload(
            outcome=outcome,
            reasons=("risk above the threshold",),
            risk=risk,
            risk_threshold=4,
            action=action,
            repository=repository,
            run_id=run_id,
            run_attempt=1,
        ),
    )
    events: list[Envelope] = [detected, analysed, gate]
    if outcome is GateOutcome.REQUIRE_APPROVAL:
        events.append(
            ApprovalRequested.answering(
                gate,
                actor="approval",
                payload=ApprovalRequestedPayload(
                    approval_id=str(uuid.uuid5(uuid.NAMESPACE_URL, gate.event_id)),
                    action=action,
                    repository=repository,
                    run_id=run_id,
                    reasons=("risk above the threshold",),
                    expires_at=utc_now() + timedelta(hours=1),
                ),
            )
        )
    elif outcome is GateOutcome.AUTO_REMEDIATE:
        started = RemediationStarted.answering(
            gate,
            actor="executor",
            payload=RemediationStartedPayload(action=action, repository=repository, run_id=run_id),
        )
        finished = RemediationFinished.answering(
            started,
            actor="executor",
            payload=RemediationFinishedPayload(
                action=action, repository=repository, run_id=run_id, outcome=RemediationOutcome.SUCCEEDED,
                detail="run 2 passed",
            ),
        )  # fmt: skip
        events += [started, finished]
    return events
