"""Synthetic failure histories: the event sequences real failures go through.

Replay drills, the projector benchmark and the tests need many realistic histories
without running the other six services; these follow the same paths the gate and the
approval service take, with deterministic times so figures are repeatable.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Literal

from medic.events import (
    ActionKind,
    AnalysisCompleted,
    AnalysisCompletedPayload,
    AnalysisMethod,
    ApprovalExpired,
    ApprovalExpiredPayload,
    ApprovalGranted,
    ApprovalGrantedPayload,
    ApprovalRejected,
    ApprovalRejectedPayload,
    ApprovalRequested,
    ApprovalRequestedPayload,
    Category,
    Envelope,
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
)

Path = Literal["auto_ok", "auto_fail", "approved_ok", "rejected", "expired", "no_action"]
PATHS: tuple[Path, ...] = ("auto_ok", "auto_fail", "approved_ok", "rejected", "expired", "no_action")
_CATEGORIES = (Category.FLAKY_TEST, Category.TIMEOUT, Category.DEPENDENCY, Category.INFRASTRUCTURE)
_METHODS = (AnalysisMethod.RULES, AnalysisMethod.MODEL, AnalysisMethod.CACHE)


def failure_history(path: Path, *, repository: str, run_id: int, start: datetime) -> list[Envelope]:
    """The events of one failure along ``path``, ``start`` being the detection time."""
    fid = derive_failure_id(repository, run_id, 1)
    clock = iter(start + timedelta(seconds=30 * i + run_id % 7) for i in range(12))
    action = ProposedAction(kind=ActionKind.RERUN_FAILED_JOBS)
    risk = 2 if path in ("auto_ok", "auto_fail") else 7
    detected_at = next(clock)
    events: list[Envelope] = [
        FailureDetected(
            failure_id=fid,
            actor="monitor",
            occurred_at=detected_at,
            payload=FailureDetectedPayload(
                repository=repository,
                run_id=run_id,
                run_attempt=1,
                workflow_name="CI",
                branch="main",
                detected_at=detected_at,
            ),
        ),
        AnalysisCompleted(
            failure_id=fid,
            actor="analyzer",
            occurred_at=next(clock),
            payload=AnalysisCompletedPayload(
                repository=repository,
                run_id=run_id,
                run_attempt=1,
                category=_CATEGORIES[run_id % len(_CATEGORIES)],
                risk=risk,
                confidence=0.85,
                proposed_action=action,
                method=_METHODS[run_id % len(_METHODS)],
                fingerprint=f"fp-{run_id % 13}",
                summary="a test failed that passed on the previous attempt",
            ),
        ),
    ]
    outcome = {
        "auto_ok": GateOutcome.AUTO_REMEDIATE,
        "auto_fail": GateOutcome.AUTO_REMEDIATE,
        "no_action": GateOutcome.NO_ACTION,
    }
    gate = outcome.get(path, GateOutcome.REQUIRE_APPROVAL)
    events.append(
        GateDecided(
            failure_id=fid,
            actor="safety-gate",
            occurred_at=next(clock),
            payload=GateDecidedPayload(
                outcome=gate,
                reasons=(f"risk {risk} vs threshold 4",),
                risk=risk,
                risk_threshold=4,
                action=action,
                repository=repository,
                run_id=run_id,
                run_attempt=1,
            ),
        )
    )
    events += _approval(path, fid, repository, run_id, action, clock)
    if path in ("auto_ok", "auto_fail", "approved_ok"):
        events += _remediation(path, fid, repository, run_id, action, clock)
    return events


def _approval(
    path: Path, fid: str, repository: str, run_id: int, action: ProposedAction, clock: Iterator[datetime]
) -> list[Envelope]:
    if path not in ("approved_ok", "rejected", "expired"):
        return []
    approval_id = f"ap-{run_id}"
    asked = next(clock)
    events: list[Envelope] = [
        ApprovalRequested(
            failure_id=fid,
            actor="approval",
            occurred_at=asked,
            payload=ApprovalRequestedPayload(
                approval_id=approval_id,
                action=action,
                repository=repository,
                run_id=run_id,
                expires_at=asked + timedelta(hours=24),
            ),
        )
    ]
    at = next(clock)
    if path == "approved_ok":
        payload = ApprovalGrantedPayload(
            approval_id=approval_id, approver="alice", action=action, repository=repository, run_id=run_id
        )
        events.append(ApprovalGranted(failure_id=fid, actor="alice", occurred_at=at, payload=payload))
    elif path == "rejected":
        rejected = ApprovalRejectedPayload(approval_id=approval_id, approver="bob", reason="not now")
        events.append(ApprovalRejected(failure_id=fid, actor="bob", occurred_at=at, payload=rejected))
    else:
        expired = ApprovalExpiredPayload(approval_id=approval_id, expired_at=at)
        events.append(ApprovalExpired(failure_id=fid, actor="approval", occurred_at=at, payload=expired))
    return events


def _remediation(
    path: Path, fid: str, repository: str, run_id: int, action: ProposedAction, clock: Iterator[datetime]
) -> list[Envelope]:
    outcome = RemediationOutcome.FAILED if path == "auto_fail" else RemediationOutcome.SUCCEEDED
    return [
        RemediationStarted(
            failure_id=fid,
            actor="executor",
            occurred_at=next(clock),
            payload=RemediationStartedPayload(action=action, repository=repository, run_id=run_id),
        ),
        RemediationFinished(
            failure_id=fid,
            actor="executor",
            occurred_at=next(clock),
            payload=RemediationFinishedPayload(
                action=action, repository=repository, run_id=run_id, outcome=outcome, verified_run_attempt=2
            ),
        ),
    ]


def mixed_histories(count: int, *, start: datetime, repositories: int = 3) -> list[Envelope]:
    """``count`` failures spread over every path and a few repositories, events in causal order."""
    events: list[Envelope] = []
    for i in range(count):
        repository = f"acme/repo-{i % repositories}"
        events += failure_history(
            PATHS[i % len(PATHS)], repository=repository, run_id=1000 + i, start=start + timedelta(seconds=i)
        )
    return events
