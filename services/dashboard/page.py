"""The server-rendered page: figures in, HTML out, with no I/O (unit-tested on its own)."""

from __future__ import annotations

from functools import cache
from importlib import resources
from string import Template
from typing import Any
from urllib.parse import quote

from medic.services.dashboard.figures import Figures, Share
from medic.services.dashboard.markup import esc, fmt_rate, fmt_seconds, fmt_time, meter, table, time_cell

APPROVAL_HEADERS = (
    "Requested",
    "Repository",
    "Branch",
    "Workflow",
    "Category",
    "Action",
    "Reasons",
    "Expires",
    "Decide",
)
AUDIT_HEADERS = ("Time", "Action", "Outcome", "Actor", "Repository", "Failure", "Details")
FAILURE_HEADERS = ("First seen", "Repository", "Branch", "Workflow", "Category", "Risk", "State")


@cache
def _template() -> Template:
    return Template((resources.files(__package__) / "templates" / "page.html").read_text("utf-8"))


def render_page(figures: Figures, assets: dict[str, str]) -> str:
    """The whole page; ``assets`` maps ``css``/``js``/``chart`` to their (versioned) URLs."""
    return _template().substitute(
        css_url=esc(assets["css"]),
        js_url=esc(assets["js"]),
        chart_url=esc(assets["chart"]),
        generated_iso=esc(figures.generated_at),
        generated=esc(fmt_time(figures.generated_at) + " UTC"),
        problems=_problems(figures.problems),
        kpis=_kpis(figures),
        hourly_table=_hourly(figures),
        category_table=_shares("Category", figures.categories),
        risk_table=_shares("Risk", figures.risks),
        resolution_note=esc(
            f"remediated failures · p50 {fmt_seconds(figures.resolution.p50)}"
            f" · p90 {fmt_seconds(figures.resolution.p90)}"
        ),
        resolution_table=_shares("Resolution time", figures.resolution.buckets),
        approval_count=esc(None if figures.approvals is None else len(figures.approvals)),
        approvals_table=_approvals(figures.approvals),
        audit_table=_audit(figures.audit),
        failures_table=_failures(figures.recent_failures),
    )


def _problems(problems: list[str]) -> str:
    if not problems:
        return ""
    items = "".join(f"<li>{esc(p)}</li>" for p in problems)
    return (
        f'<div class="problems" role="alert"><strong>Some figures are missing:</strong><ul>{items}</ul></div>'
    )


def _kpis(f: Figures) -> str:
    states = f.by_state
    tiles = (
        ("total", "Failures seen", esc(f.total_failures), "all time"),
        ("rate", "Auto-fix success", esc(fmt_rate(f.success_rate)), "remediated ÷ (remediated + failed)"),
        ("p50", "Median time to fix", esc(fmt_seconds(f.resolution.p50)), "detected → green again"),
        ("p90", "p90 time to fix", esc(fmt_seconds(f.resolution.p90)), "the slow tail"),
        ("pending", "Awaiting approval", esc(states.get("awaiting_approval", 0)), "a person decides"),
        ("failed", "Fixes that failed", esc(states.get("remediation_failed", 0)), "CI stayed red"),
    )
    return "\n".join(
        f'<div class="kpi" id="kpi-{key}"><span class="kpi-label">{esc(label)}</span>'
        f'<span class="kpi-value">{value}</span><span class="kpi-hint">{esc(hint)}</span></div>'
        for key, label, value, hint in tiles
    )


def _hourly(f: Figures) -> str:
    high = max((h.remediated + h.failed + h.other for h in f.hourly), default=0)
    rows = [
        [
            time_cell(h.hour),
            esc(h.remediated),
            esc(h.failed),
            esc(h.other),
            esc(fmt_rate(h.rate)),
            meter(h.remediated + h.failed + h.other, high),
        ]
        for h in f.hourly
    ]
    return table(
        ("Hour (UTC)", "Remediated", "Fix failed", "Other", "Success", ""),
        rows,
        empty="No failure has settled in the last 48 hours.",
    )


def _shares(title: str, rows: list[Share]) -> str:
    high = max((s.count for s in rows), default=0)
    return table((title, "Failures", ""), [[esc(s.label), esc(s.count), meter(s.count, high)] for s in rows])


def _failure_link(failure_id: Any) -> str:
    if not failure_id:
        return esc(None)
    text = str(failure_id)
    return f'<a href="api/failures/{esc(quote(text, safe=""))}" title="{esc(text)}">{esc(text[:8])}</a>'


def _approvals(approvals: list[dict[str, Any]] | None) -> str:
    if approvals is None:
        return '<p class="note">The approval API is not reachable from here.</p>'
    rows, attrs = [], []
    for a in approvals:
        buttons = (
            '<button type="button" class="approve" data-decision="approve" disabled>Approve</button>'
            '<button type="button" class="reject" data-decision="reject" disabled>Reject</button>'
        )
        rows.append(
            [
                time_cell(a["requested_at"]),
                esc(a["repository"]),
                esc(a["branch"]),
                esc(a["workflow"]),
                esc(a["category"]),
                f"<code>{esc(a['action'])}</code>",
                esc("; ".join(a["reasons"]) or None),
                time_cell(a["expires_at"]),
                buttons,
            ]
        )
        attrs.append(f'data-approval-id="{esc(a["approval_id"])}"')
    return table(
        APPROVAL_HEADERS,
        rows,
        body_id="approvals-body",
        row_attrs=attrs,
        empty="Nothing waits for a decision.",
    )


def _audit(audit: list[dict[str, Any]] | None) -> str:
    if audit is None:
        return '<p class="note">The audit log is not reachable from here.</p>'
    rows = [
        [
            time_cell(r["occurred_at"]),
            esc(r["action"]),
            esc(r["outcome"]),
            esc(r["actor"]),
            esc(r["repository"]),
            _failure_link(r["failure_id"]),
            f"<code>{esc(r['details'])}</code>",
        ]
        for r in audit
    ]
    return table(AUDIT_HEADERS, rows, body_id="audit-body", empty="No events yet.")


def _failures(failures: list[dict[str, Any]] | None) -> str:
    if failures is None:
        return '<p class="note">The failure list is not reachable from here.</p>'
    rows = [
        [
            time_cell(r.get("first_seen_at")),
            esc(r.get("repository")),
            esc(r.get("branch")),
            esc(r.get("workflow_name")),
            esc(r.get("category")),
            esc(r.get("risk")),
            f'<span class="state state-{esc(r.get("state"))}">{esc(r.get("state"))}</span>',
        ]
        for r in failures
    ]
    return table(FAILURE_HEADERS, rows, body_id="failures-body", empty="No failures yet.")
