"""The dashboard page: stranger-written values stay text, figures are right, gaps are visible."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, HTTPException
from fastapi.testclient import TestClient

from medic.services.dashboard import router
from medic.services.dashboard.figures import build_figures, hourly_outcomes, resolution, shares
from medic.services.dashboard.page import render_page
from medic.services.dashboard.source import Snapshot
from medic.services.dashboard.views import asset_urls, static_file

NOW = datetime(2026, 3, 2, 12, 30, tzinfo=UTC)
EVIL = '<script>alert(1)</script>"><img src=x onerror=alert(2)>'


def failure(n: int, **fields: Any) -> dict[str, Any]:
    return {
        "failure_id": f"f-{n}",
        "repository": "octo-org/octo-repo",
        "branch": "main",
        "workflow_name": "CI",
        "category": "timeout",
        "risk": 3,
        "state": "remediated",
        "first_seen_at": "2026-03-02T11:00:00Z",
        "detected_at": "2026-03-02T11:00:00Z",
        "settled_at": "2026-03-02T11:00:03Z",
    } | fields


def summary(**fields: Any) -> dict[str, Any]:
    return {
        "total_failures": 3,
        "by_state": {"remediated": 2, "awaiting_approval": 1},
        "success_rate": 1.0,
        "avg_resolution_seconds": 3.0,
        "p50_resolution_seconds": 2.5,
        "p90_resolution_seconds": 4.0,
        "by_category": {"timeout": 2, "compile": 1},
        "by_risk": {"10": 1, "2": 1, "9": 1},
        "hourly_outcomes": [{"hour": "2026-03-02T11:00:00+00:00", "counts": {"remediated": 2}}],
    } | fields


def hostile_snapshot() -> Snapshot:
    return Snapshot(
        summary=summary(by_category={EVIL: 1}),
        failures=[failure(1, branch=EVIL, failure_id='f" onmouseover="x'), failure(2, workflow_name=EVIL)],
        audit=[
            {
                "id": 7,
                "event_id": "e",
                "occurred_at": "2026-03-02T11:00:00Z",
                "actor": EVIL,
                "action": "ApprovalGranted",
                "outcome": "granted",
                "failure_id": 'f" onmouseover="x',
                "repository": "octo-org/octo-repo",
                "details": {"comment": EVIL},
            }
        ],
        approvals=[
            {
                "approval_id": 'a"><script>x</script>',
                "failure_id": 'f" onmouseover="x',
                "repository": EVIL,
                "run_id": 1,
                "action": {"kind": "rerun_failed_jobs"},
                "reasons": [EVIL],
                "requested_at": "2026-03-02T11:00:01Z",
                "expires_at": "2026-03-03T11:00:01Z",
            }
        ],
    )


def test_values_written_by_strangers_stay_text() -> None:
    page = render_page(build_figures(hostile_snapshot(), now=NOW), asset_urls())
    assert "<script>alert" not in page and "<img" not in page and "<script>x" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&quot;&gt;&lt;img src=x onerror=alert(2)&gt;" in page
    assert 'data-approval-id="a&quot;&gt;&lt;script&gt;x&lt;/script&gt;"' in page
    assert 'href="api/failures/f%22%20onmouseover%3D%22x"' in page
    assert page.count("<script") == 2, "only the two packaged scripts"


def test_the_hourly_series_spans_a_day_with_quiet_hours_as_zeros() -> None:
    series = hourly_outcomes(summary(), None, now=NOW)
    assert len(series) == 24
    assert series[0].hour == "2026-03-01T13:00:00+00:00" and series[-1].hour == "2026-03-02T12:00:00+00:00"
    busy = [h for h in series if h.remediated]
    assert [(h.hour, h.remediated, h.rate) for h in busy] == [("2026-03-02T11:00:00+00:00", 2, 1.0)]
    assert series[0].rate is None


def test_without_the_summary_series_the_hours_come_from_failures() -> None:
    failures = [
        failure(1),
        failure(2, state="remediation_failed", settled_at="2026-03-02T11:40:00Z"),
        failure(3, state="no_action", settled_at="2026-03-02T11:59:59Z"),
        failure(4, state="awaiting_approval", settled_at=None),
    ]
    legacy = {k: v for k, v in summary().items() if k != "hourly_outcomes"}
    (hour,) = [h for h in hourly_outcomes(legacy, failures, now=NOW) if h.remediated or h.failed or h.other]
    assert (hour.remediated, hour.failed, hour.other, hour.rate) == (1, 1, 1, 0.5)


def test_resolution_histogram_counts_remediated_failures_only() -> None:
    failures = [
        failure(1, settled_at="2026-03-02T11:00:00.5Z"),
        failure(2, settled_at="2026-03-02T11:00:03Z"),
        failure(3, settled_at="2026-03-02T13:00:00Z"),
        failure(4, state="remediation_failed"),
        failure(5, settled_at=None),
    ]
    r = resolution(summary(), failures)
    assert {b.label: b.count for b in r.buckets if b.count} == {"< 1 s": 1, "1-5 s": 1, "> 2 h": 1}
    assert (r.p50, r.p90, r.mean) == (2.5, 4.0, 3.0)


def test_risk_levels_keep_their_order_and_categories_their_size() -> None:
    assert [s.label for s in shares({"10": 1, "2": 5, "9": 1}, numeric=True)] == ["2", "9", "10"]
    assert [s.label for s in shares({"b": 1, "a": 1, "c": 3})] == ["c", "a", "b"]


def test_a_missing_source_is_a_note_not_an_error_page() -> None:
    snapshot = Snapshot(None, None, None, None, problems=["/api/approvals: HTTP 404"])
    page = render_page(build_figures(snapshot, now=NOW), asset_urls())
    assert "The approval API is not reachable from here." in page
    assert "The audit log is not reachable from here." in page
    assert "/api/approvals: HTTP 404" in page


def fake_api() -> FastAPI:
    """Stand-ins for the projector's and approval service's endpoints the page reads."""
    app = FastAPI()
    snapshot = hostile_snapshot()

    @app.get("/api/metrics/summary")
    async def summary_() -> dict[str, Any]:
        hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0).isoformat()
        return (snapshot.summary or {}) | {"hourly_outcomes": [{"hour": hour, "counts": {"remediated": 2}}]}

    @app.get("/api/failures")
    async def failures() -> dict[str, Any]:
        return {"items": snapshot.failures, "next_cursor": None}

    @app.get("/api/audit")
    async def audit() -> dict[str, Any]:
        return {"items": snapshot.audit, "next_cursor": None}

    @app.get("/api/approvals")
    async def approvals() -> list[dict[str, Any]]:
        raise HTTPException(503, "approval service not started")

    app.include_router(router())
    return app


def test_the_page_reads_the_api_of_its_own_app() -> None:
    with TestClient(fake_api()) as client:
        response = client.get("/")
        assert response.status_code == 200
        assert "script-src 'self'" in response.headers["content-security-policy"]
        assert '<span class="kpi-value">3</span>' in response.text
        assert "/api/approvals: HTTP 503" in response.text
        data = client.get("/api/dashboard").json()
        assert data["total_failures"] == 3 and data["approvals"] is None
        assert [h["rate"] for h in data["hourly"]] == [None] * 23 + [1.0]


def test_static_files_are_the_packaged_ones_only() -> None:
    with TestClient(fake_api()) as client:
        body, digest = static_file("chart.umd.min.js")
        response = client.get(f"/static/dashboard/chart.umd.min.js?v={digest}")
        assert response.content == body and b"Chart.js v4" in body[:100]
        assert response.headers["content-type"].startswith("text/javascript")
        assert "immutable" in response.headers["cache-control"]
        assert "immutable" not in client.get("/static/dashboard/dashboard.css").headers["cache-control"]
        for name in ("VENDORED.md", "..%2F__init__.py", "chart.js.LICENSE.md"):
            assert client.get(f"/static/dashboard/{name}").status_code == 404
