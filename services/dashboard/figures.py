"""What the page shows, computed from one :class:`~.source.Snapshot`: plain data, no HTML.

The same figures feed the server-rendered tables and, as JSON, the charts, so the page with
JavaScript off and the page with charts can never disagree about a number.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from medic.services.dashboard.source import Snapshot

FINISHED = ("remediated", "remediation_failed")
RESOLUTION_BUCKETS: tuple[tuple[float, str], ...] = (
    (1, "< 1 s"),
    (5, "1-5 s"),
    (15, "5-15 s"),
    (60, "15-60 s"),
    (300, "1-5 min"),
    (1800, "5-30 min"),
    (7200, "30 min-2 h"),
    (math.inf, "> 2 h"),
)
MAX_HOURS = 24 * 90
DAY_HOURS = 24
RECENT_FAILURES = 12
DETAILS_CHARS = 160


@dataclass(frozen=True)
class Hour:
    hour: str
    remediated: int
    failed: int
    other: int

    @property
    def rate(self) -> float | None:
        finished = self.remediated + self.failed
        return self.remediated / finished if finished else None


@dataclass(frozen=True)
class Share:
    label: str
    count: int


@dataclass(frozen=True)
class Resolution:
    p50: float | None
    p90: float | None
    mean: float | None
    buckets: list[Share]


@dataclass(frozen=True)
class Figures:
    generated_at: str
    total_failures: int | None
    success_rate: float | None
    by_state: dict[str, int]
    hourly: list[Hour]
    categories: list[Share]
    risks: list[Share]
    resolution: Resolution
    audit: list[dict[str, Any]] | None
    approvals: list[dict[str, Any]] | None
    recent_failures: list[dict[str, Any]] | None
    problems: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        """The shape ``dashboard.js`` draws from (``hourly`` rows carry their ``rate``)."""
        return {
            "generated_at": self.generated_at,
            "total_failures": self.total_failures,
            "success_rate": self.success_rate,
            "by_state": self.by_state,
            "hourly": [{**vars(h), "rate": h.rate} for h in self.hourly],
            "categories": [vars(s) for s in self.categories],
            "risks": [vars(s) for s in self.risks],
            "resolution": {
                "p50": self.resolution.p50,
                "p90": self.resolution.p90,
                "mean": self.resolution.mean,
                "buckets": [vars(s) for s in self.resolution.buckets],
            },
            "audit": self.audit,
            "approvals": self.approvals,
            "recent_failures": self.recent_failures,
            "problems": self.problems,
        }


def parse_time(value: Any) -> datetime | None:
    """An API timestamp as an aware datetime; anything unparsable is treated as absent."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def hourly_outcomes(
    summary: dict[str, Any] | None, failures: list[dict[str, Any]] | None, *, now: datetime
) -> list[Hour]:
    """Outcomes per hour of settling: the summary's series when it has one, else from failures.

    Hours without outcomes are zeros, and the series spans at least the last day, so a quiet
    hour looks quiet instead of vanishing from the axis.
    """
    counts: dict[datetime, Counter[str]] = {}
    if summary is not None and isinstance(summary.get("hourly_outcomes"), list):
        for row in summary["hourly_outcomes"]:
            hour = parse_time(row.get("hour")) if isinstance(row, dict) else None
            if hour is not None and isinstance(row.get("counts"), dict):
                counts.setdefault(hour, Counter()).update(
                    {str(k): int(v) for k, v in row["counts"].items() if isinstance(v, int)}
                )
    else:
        for failure in failures or []:
            settled = parse_time(failure.get("settled_at"))
            if settled is not None:
                hour = settled.replace(minute=0, second=0, microsecond=0)
                counts.setdefault(hour, Counter())[str(failure.get("state"))] += 1
    if not counts:
        return []
    current = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    hours = min(*counts, current - timedelta(hours=DAY_HOURS - 1))
    last = max(*counts, current)
    hours = max(hours, last - timedelta(hours=MAX_HOURS - 1))
    series: list[Hour] = []
    while hours <= last:
        c = counts.get(hours, Counter())
        other = sum(n for state, n in c.items() if state not in FINISHED)
        series.append(Hour(hours.isoformat(), c["remediated"], c["remediation_failed"], other))
        hours += timedelta(hours=1)
    return series


def shares(counts: Any, *, numeric: bool = False) -> list[Share]:
    """A ``{label: count}`` map as rows, largest first (risk levels in their own order)."""
    if not isinstance(counts, dict):
        return []
    rows = [Share(str(k), int(v)) for k, v in counts.items() if isinstance(v, int)]
    if numeric:
        return sorted(rows, key=lambda s: (not s.label.isdigit(), int(s.label) if s.label.isdigit() else 0))
    return sorted(rows, key=lambda s: (-s.count, s.label))


def resolution(summary: dict[str, Any] | None, failures: list[dict[str, Any]] | None) -> Resolution:
    """p50/p90/mean from the summary; the histogram from the latest remediated failures."""
    buckets = [0] * len(RESOLUTION_BUCKETS)
    for failure in failures or []:
        start, end = parse_time(failure.get("detected_at")), parse_time(failure.get("settled_at"))
        if failure.get("state") != "remediated" or start is None or end is None:
            continue
        seconds = max((end - start).total_seconds(), 0.0)
        buckets[next(i for i, (upper, _) in enumerate(RESOLUTION_BUCKETS) if seconds < upper)] += 1
    s = summary or {}
    return Resolution(
        p50=_number(s.get("p50_resolution_seconds")),
        p90=_number(s.get("p90_resolution_seconds")),
        mean=_number(s.get("avg_resolution_seconds")),
        buckets=[Share(label, n) for (_, label), n in zip(RESOLUTION_BUCKETS, buckets, strict=True)],
    )


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def audit_rows(audit: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
    """Audit rows with ``details`` flattened to a short line (the full row is in the API)."""
    if audit is None:
        return None
    rows = []
    for row in audit:
        details = json.dumps(row.get("details", {}), separators=(",", ":"), ensure_ascii=False)
        short = details if len(details) <= DETAILS_CHARS else details[: DETAILS_CHARS - 1] + "…"
        rows.append(
            {
                k: row.get(k)
                for k in ("id", "occurred_at", "actor", "action", "outcome", "repository", "failure_id")
            }
            | {"details": short}
        )
    return rows


def approval_rows(
    approvals: list[dict[str, Any]] | None, failures: list[dict[str, Any]] | None
) -> list[dict[str, Any]] | None:
    """Pending approvals, oldest first, with the failure's branch, workflow and category."""
    if approvals is None:
        return None
    by_id = {f.get("failure_id"): f for f in failures or []}
    rows = []
    for approval in sorted(approvals, key=lambda a: str(a.get("requested_at", ""))):
        failure = by_id.get(approval.get("failure_id"), {})
        action = approval.get("action")
        rows.append(
            {
                "approval_id": approval.get("approval_id"),
                "failure_id": approval.get("failure_id"),
                "repository": approval.get("repository"),
                "run_id": approval.get("run_id"),
                "action": action.get("kind") if isinstance(action, dict) else action,
                "reasons": [str(r) for r in approval.get("reasons") or []],
                "requested_at": approval.get("requested_at"),
                "expires_at": approval.get("expires_at"),
                "branch": failure.get("branch"),
                "workflow": failure.get("workflow_name"),
                "category": failure.get("category"),
            }
        )
    return rows


def build_figures(snapshot: Snapshot, *, now: datetime | None = None) -> Figures:
    now = now or datetime.now(UTC)
    summary = snapshot.summary
    total = summary.get("total_failures") if summary else None
    rate = summary.get("success_rate") if summary else None
    by_state = summary.get("by_state") if summary else None
    return Figures(
        generated_at=now.isoformat(),
        total_failures=total if isinstance(total, int) else None,
        success_rate=_number(rate),
        by_state={str(k): int(v) for k, v in by_state.items()} if isinstance(by_state, dict) else {},
        hourly=hourly_outcomes(summary, snapshot.failures, now=now),
        categories=shares(summary.get("by_category") if summary else None),
        risks=shares(summary.get("by_risk") if summary else None, numeric=True),
        resolution=resolution(summary, snapshot.failures),
        audit=audit_rows(snapshot.audit),
        approvals=approval_rows(snapshot.approvals, snapshot.failures),
        recent_failures=None if snapshot.failures is None else snapshot.failures[:RECENT_FAILURES],
        problems=list(snapshot.problems),
    )
