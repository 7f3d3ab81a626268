"""One readable line per stage of a failure, for people (a terminal today, Slack later).

Everything quoted from GitHub (branch, commit message, log lines) is shown as data:
control characters are removed and long text is cut, so a log cannot forge a line.
"""

from __future__ import annotations

import re

from medic.events import (
    AnalysisCompleted,
    ApprovalExpired,
    ApprovalGranted,
    ApprovalRejected,
    ApprovalRequested,
    Event,
    FailureDetected,
    GateDecided,
    PolicyChanged,
    RemediationFinished,
    RemediationStarted,
)

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
"""C0/C1 controls, Unicode line/paragraph separators, and bidi overrides that reorder what is shown."""
_MAX_JOBS = 5


def quote(text: str, limit: int = 120) -> str:
    clean = _CONTROL.sub(" ", text).strip()
    return clean if len(clean) <= limit else clean[: limit - 1] + "…"


def describe(event: Event) -> str:
    short = quote(event.failure_id[:8])
    match event:
        case FailureDetected(payload=p):
            names = [quote(j.name, 40) for j in p.failed_jobs[:_MAX_JOBS]]
            more = len(p.failed_jobs) - len(names)
            jobs = ", ".join(names) + (f" and {more} more" if more > 0 else "") or "no job details"
            return (
                f"[{short}] FAILED {quote(p.repository, 100)} #{p.run_id}.{p.run_attempt}"
                f" {quote(p.workflow_name, 60)} on {quote(p.branch, 60)} ({jobs})"
            )
        case AnalysisCompleted(payload=p):
            return (
                f"[{short}] ANALYZED {p.category.value} risk={p.risk} confidence={p.confidence:.2f}"
                f" via {p.method.value}; proposes {p.proposed_action.kind.value}"
            )
        case GateDecided(payload=p):
            return f"[{short}] GATE {p.outcome.value}: {quote('; '.join(p.reasons), 200)}"
        case ApprovalRequested(payload=p):
            return (
                f"[{short}] APPROVAL NEEDED for {p.action.kind.value} on {quote(p.repository, 100)}"
                f" (id {quote(p.approval_id, 40)}, expires {p.expires_at:%Y-%m-%d %H:%M}Z)"
            )
        case ApprovalGranted(payload=p):
            return f"[{short}] APPROVED by {quote(p.approver, 60)}"
        case ApprovalRejected(payload=p):
            return f"[{short}] REJECTED by {quote(p.approver, 60)}: {quote(p.reason)}"
        case ApprovalExpired():
            return f"[{short}] APPROVAL EXPIRED: nobody decided in time"
        case RemediationStarted(payload=p):
            return f"[{short}] REMEDIATING {quote(p.repository, 100)} #{p.run_id}: {p.action.kind.value}"
        case RemediationFinished(payload=p):
            return f"[{short}] REMEDIATION {p.outcome.value.upper()}: {quote(p.detail, 200)}"
        case PolicyChanged(payload=p):
            return (
                f"[policy] {p.change.value} for {quote(p.scope, 100)} by {quote(p.changed_by, 60)}:"
                f" {quote(p.reason, 200)}"
            )
    return f"[{short}] {event.event_type}"
