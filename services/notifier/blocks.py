"""Block Kit for a failure's thread: the parent message, one reply per stage, the approval card.

Every piece of outside text goes through :mod:`medic.slack.mrkdwn` (or a ``plain_text``
object, which Slack never parses), so a branch called ``<!channel>`` is shown, not sent.
Each reply's first block carries ``block_id = ev:<event id>``: how a crash between posting a
reply and recording it is reconciled from the thread itself.
"""

from __future__ import annotations

from typing import Any

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
from medic.services.notifier.facts import Facts, Stage
from medic.slack import mrkdwn
from medic.slack.actions import APPROVE_ACTION, REJECT_ACTION

Block = dict[str, Any]

STAGE_LABEL = {
    Stage.DETECTED: (":red_circle:", "failed, analysing"),
    Stage.ANALYSED: (":mag:", "analysed"),
    Stage.AWAITING_APPROVAL: (":raised_hand:", "waiting for approval"),
    Stage.APPROVED: (":white_check_mark:", "approved"),
    Stage.REMEDIATING: (":hammer_and_wrench:", "remediating"),
    Stage.FIXED: (":large_green_circle:", "fixed"),
    Stage.FIX_FAILED: (":x:", "fix failed"),
    Stage.REJECTED: (":no_entry_sign:", "rejected"),
    Stage.EXPIRED: (":hourglass:", "approval expired"),
    Stage.NO_ACTION: (":warning:", "no automatic fix"),
}


def reply_marker(event_id: str) -> str:
    return f"ev:{event_id}"


def _who(name: str) -> str:
    """A Slack user id becomes a mention; anything else (web, CLI names) is escaped text."""
    import re

    slack = re.fullmatch(r"slack:(?:[TE][A-Z0-9]{1,20}/)?([UW][A-Z0-9]{2,20})", name)
    if slack:
        return f"<@{slack.group(1)}>"
    return mrkdwn.escape(name, 80)


def stage_line(facts: Facts) -> str:
    emoji, label = STAGE_LABEL[facts.stage]
    line = f"{emoji} *{label}*"
    if facts.decided_by and facts.stage in (Stage.APPROVED, Stage.REJECTED):
        line += f" by {_who(facts.decided_by)}"
    return line


def parent(facts: Facts, *, dashboard_url: str) -> tuple[str, list[Block]]:
    """The message that stands for the failure; edited in place as the failure moves."""
    _, label = STAGE_LABEL[facts.stage]
    title = f"{facts.repository or 'unknown repository'} · {facts.workflow or 'workflow'}"
    text = f"CI failure in {mrkdwn.escape(title)}: {label}"
    fields = [
        f"*Branch*\n{mrkdwn.code(facts.branch or '-')}",
        f"*Commit*\n{mrkdwn.code(facts.head_sha[:10] or '-')} {mrkdwn.escape(facts.commit_message, 80)}",
        f"*Run*\n{mrkdwn.link(facts.run_url, f'#{facts.run_id} attempt {facts.run_attempt}')}"
        if facts.run_id is not None
        else "*Run*\n-",
    ]
    if facts.category:
        fields.append(f"*Category*\n{mrkdwn.code(facts.category)}")
    if facts.risk is not None:
        confidence = f" · confidence {facts.confidence:.0%}" if facts.confidence is not None else ""
        fields.append(f"*Risk*\n{facts.risk}/10{confidence}")
    if facts.action:
        fields.append(f"*Proposed action*\n{mrkdwn.code(facts.action)}")
    blocks: list[Block] = [
        {"type": "header", "text": {"type": "plain_text", "text": mrkdwn.plain(title, 150)}},
        {"type": "section", "text": {"type": "mrkdwn", "text": stage_line(facts)}},
        {"type": "section", "fields": [{"type": "mrkdwn", "text": f} for f in fields]},
    ]
    if facts.reasons:
        reasons = "; ".join(mrkdwn.escape(r, 200) for r in facts.reasons[:5])
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": f"Gate: {reasons}"}]})
    link = mrkdwn.link(f"{dashboard_url}/api/failures/{facts.failure_id}", "failure record")
    audit = mrkdwn.link(f"{dashboard_url}/api/audit?failure_id={facts.failure_id}", "audit trail")
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": f"{link} · {audit}"}]})
    return text, blocks


def reply(event: Event, facts: Facts) -> tuple[str, list[Block]] | None:
    """The thread reply telling one stage, or None for an event the thread does not tell."""
    lines = _reply_lines(event, facts)
    if lines is None:
        return None
    text, extra = lines
    blocks: list[Block] = [
        {
            "type": "section",
            "block_id": reply_marker(event.event_id),
            "text": {"type": "mrkdwn", "text": text},
        }
    ]
    blocks.extend(extra)
    return mrkdwn.plain(text.replace("*", ""), 300), blocks


def _excerpt(facts: Facts) -> list[Block]:
    if not facts.excerpt:
        return []
    return [{"type": "section", "text": {"type": "mrkdwn", "text": mrkdwn.code_block(list(facts.excerpt))}}]


def _reply_lines(event: Event, facts: Facts) -> tuple[str, list[Block]] | None:
    match event:
        case FailureDetected(payload=p):
            jobs = ", ".join(mrkdwn.escape(j, 60) for j in facts.jobs[:5]) or "no job details"
            return f":red_circle: *Detected* run #{p.run_id} attempt {p.run_attempt}: failed {jobs}", []
        case AnalysisCompleted(payload=p):
            summary = mrkdwn.escape(p.summary, 500) if p.summary else "no summary"
            head = (
                f":mag: *Analysed* as {mrkdwn.code(p.category.value)} (risk {p.risk}/10, confidence "
                f"{p.confidence:.0%}, by {p.method.value}); "
                f"proposes {mrkdwn.code(p.proposed_action.kind.value)}"
                f"\n{summary}"
            )
            return head, _excerpt(facts)
        case GateDecided(payload=p):
            reasons = "\n".join(f"• {mrkdwn.escape(r, 300)}" for r in p.reasons[:8])
            if p.outcome is GateOutcome.NO_ACTION:
                summary = mrkdwn.escape(facts.summary, 500) or "no summary"
                return (
                    f":warning: *No automatic fix*: this needs a person. {summary}\n{reasons}",
                    _excerpt(facts),
                )
            verb = "will fix it automatically" if p.outcome is GateOutcome.AUTO_REMEDIATE else "asks a person"
            return f":shield: *Gate* {verb}\n{reasons}", []
        case ApprovalRequested():
            return None  # the approval card is its own reply, with buttons
        case ApprovalGranted(payload=p):
            return (
                f":white_check_mark: *Approved* by {_who(p.approver)}: {mrkdwn.code(p.action.kind.value)}",
                [],
            )
        case ApprovalRejected(payload=p):
            reason = f": {mrkdwn.escape(p.reason, 300)}" if p.reason else ""
            return f":no_entry_sign: *Rejected* by {_who(p.approver)}{reason}", []
        case ApprovalExpired():
            return ":hourglass: *Approval expired*: nobody decided in time", []
        case RemediationStarted(payload=p):
            return f":hammer_and_wrench: *Remediating*: {mrkdwn.code(p.action.kind.value)}", []
        case RemediationFinished(payload=p):
            ok = p.outcome is RemediationOutcome.SUCCEEDED
            head = ":large_green_circle: *Fixed*" if ok else ":x: *Fix failed*"
            return f"{head}: {mrkdwn.escape(p.detail, 300)}", []
    return None


def approval_card(
    request: ApprovalRequested,
    facts: Facts,
    *,
    needed: int,
    approved_by: tuple[str, ...] = (),
    outcome: str | None = None,
) -> tuple[str, list[Block]]:
    """Approve / Reject buttons while pending; once decided the buttons give way to the outcome."""
    p = request.payload
    risk = f"risk {facts.risk}/10" if facts.risk is not None else "risk unknown"
    text = (
        f":raised_hand: *Approval needed* for {mrkdwn.code(p.action.kind.value)} on "
        f"{mrkdwn.escape(p.repository)} ({risk}); {needed} approver{'s' if needed > 1 else ''} needed, "
        f"expires {p.expires_at:%Y-%m-%d %H:%M} UTC"
    )
    blocks: list[Block] = [
        {
            "type": "section",
            "block_id": reply_marker(request.event_id),
            "text": {"type": "mrkdwn", "text": text},
        }
    ]
    if approved_by:
        names = ", ".join(_who(a) for a in approved_by)
        blocks.append(
            {"type": "context", "elements": [{"type": "mrkdwn", "text": f"Approved so far by {names}"}]}
        )
    if outcome is None:
        blocks.append(
            {
                "type": "actions",
                "block_id": f"approval:{p.approval_id}",
                "elements": [
                    {
                        "type": "button",
                        "action_id": APPROVE_ACTION,
                        "style": "primary",
                        "text": {"type": "plain_text", "text": "Approve"},
                        "value": p.approval_id,
                    },
                    {
                        "type": "button",
                        "action_id": REJECT_ACTION,
                        "style": "danger",
                        "text": {"type": "plain_text", "text": "Reject"},
                        "value": p.approval_id,
                    },
                ],
            }
        )
    else:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": outcome}]})
    return mrkdwn.plain(text.replace("*", ""), 300), blocks


def outcome_line(event: Event) -> str | None:
    """What replaces the buttons once the approval is decided (or has expired)."""
    match event:
        case ApprovalGranted(payload=p):
            return f":white_check_mark: Approved by {_who(p.approver)}"
        case ApprovalRejected(payload=p):
            reason = f": {mrkdwn.escape(p.reason, 200)}" if p.reason else ""
            return f":no_entry_sign: Rejected by {_who(p.approver)}{reason}"
        case ApprovalExpired():
            return ":hourglass: Expired: nobody decided in time"
    return None


def pointer(facts: Facts, permalink: str, why: str) -> tuple[str, list[Block]]:
    """A short message in another channel (critical, approvals) that links to the thread."""
    title = mrkdwn.escape(f"{facts.repository} · {facts.workflow}", 150)
    text = f"{why}: {title} — {mrkdwn.link(permalink, 'open the thread')}"
    return mrkdwn.plain(f"{why}: {facts.repository}", 300), [
        {"type": "section", "text": {"type": "mrkdwn", "text": text}}
    ]
