"""The query API over real HTTP: filters, pagination, 404s, exports, metrics, hostile input."""

from __future__ import annotations

import base64
import csv
import io
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest
from fastapi import FastAPI

from medic.runtime import HttpServer
from medic.services.projector.service import ProjectorService
from medic.services.projector.store import apply_events
from tests.event_histories import PATHS, mixed_histories

START = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
EVENTS = mixed_histories(2 * len(PATHS), start=START)


@pytest.fixture
async def api(database_url: str, db_schema: str) -> AsyncIterator[httpx.AsyncClient]:
    svc = ProjectorService(database_url=database_url, schema=db_schema, pool_size=4)
    await svc.start()
    async with svc.pool.acquire() as conn:
        await apply_events(conn, [(e, i) for i, e in enumerate(EVENTS, 1)])  # type: ignore[misc]
    app = FastAPI()
    app.include_router(svc.router())
    server = HttpServer(app)
    await server.start()
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        yield client
    await server.stop()
    await svc.stop()


async def test_audit_filters_by_failure_id_in_chain_order(api: httpx.AsyncClient) -> None:
    failure_id = EVENTS[0].failure_id
    response = await api.get("/api/audit", params={"failure_id": failure_id})
    assert response.status_code == 200
    body = response.json()
    assert body["next_cursor"] is None
    assert [i["event_id"] for i in body["items"]] == [
        e.event_id for e in EVENTS if e.failure_id == failure_id
    ]
    assert [i["action"] for i in body["items"]][:3] == ["FailureDetected", "AnalysisCompleted", "GateDecided"]


async def test_audit_filters_combine(api: httpx.AsyncClient) -> None:
    params = {"action": "RemediationFinished", "repository": "acme/repo-0", "outcome": "succeeded"}
    items = (await api.get("/api/audit", params=params)).json()["items"]
    expected = [
        e.event_id
        for e in EVENTS
        if e.event_type == "RemediationFinished"  # type: ignore[attr-defined]
        and e.payload.repository == "acme/repo-0"  # type: ignore[attr-defined]
        and e.payload.outcome == "succeeded"  # type: ignore[attr-defined]
    ]
    assert expected and [i["event_id"] for i in items] == expected
    by_actor = (await api.get("/api/audit", params={"actor": "alice"})).json()["items"]
    assert by_actor and {i["action"] for i in by_actor} == {"ApprovalGranted"}
    window = {"start": "2025-03-01T09:00:00Z", "end": "2025-03-01T09:00:05"}
    in_window = (await api.get("/api/audit", params=window)).json()["items"]
    assert in_window and all(i["occurred_at"] < "2025-03-01T09:00:05" for i in in_window)


@pytest.mark.parametrize("order", ["asc", "desc"])
async def test_audit_cursor_pagination_visits_every_row_once(api: httpx.AsyncClient, order: str) -> None:
    seen: list[int] = []
    cursor: str | None = None
    while True:
        params: dict[str, str | int] = {"limit": 7, "order": order, **({"cursor": cursor} if cursor else {})}
        body = (await api.get("/api/audit", params=params)).json()
        seen += [i["id"] for i in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    expected = list(range(1, len(EVENTS) + 1))
    assert seen == (expected if order == "asc" else expected[::-1])


async def test_failures_list_detail_and_404(api: httpx.AsyncClient) -> None:
    remediated = (await api.get("/api/failures", params={"state": "remediated"})).json()["items"]
    assert len(remediated) == 4 and {f["state"] for f in remediated} == {"remediated"}
    pages, cursor = [], None
    while True:
        body = (
            await api.get("/api/failures", params={"limit": 5, **({"cursor": cursor} if cursor else {})})
        ).json()
        pages += [f["failure_id"] for f in body["items"]]
        if (cursor := body["next_cursor"]) is None:
            break
    assert len(pages) == len(set(pages)) == 2 * len(PATHS)
    detail = (await api.get(f"/api/failures/{remediated[0]['failure_id']}")).json()
    assert detail["failure"]["state"] == "remediated"
    assert detail["timeline"][0]["action"] == "FailureDetected"
    assert detail["timeline"][-1]["action"] == "RemediationFinished"
    missing = await api.get("/api/failures/00000000-0000-0000-0000-000000000000")
    assert missing.status_code == 404


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode()


@pytest.mark.parametrize(
    ("path", "params", "status"),
    [
        ("/api/audit", {"limit": 100000}, 422),
        ("/api/audit", {"limit": 0}, 422),
        ("/api/audit", {"limit": "ten"}, 422),
        ("/api/audit", {"start": "yesterday"}, 422),
        ("/api/audit", {"start": "2025-03-02T00:00:00Z", "end": "2025-03-01T00:00:00Z"}, 422),
        ("/api/audit", {"action": "'; DROP TABLE audit_log; --"}, 422),
        ("/api/audit", {"order": "sideways"}, 422),
        ("/api/audit", {"repository": "x" * 1000}, 422),
        ("/api/audit", {"cursor": "not a cursor!!"}, 400),
        ("/api/audit", {"cursor": _b64('{"k":"audit-asc","id":"1 OR 1=1"}')}, 400),
        ("/api/audit", {"cursor": _b64('{"k":"failures","at":"2025-01-01T00:00:00+00:00","id":"x"}')}, 400),
        ("/api/audit", {"cursor": "A" * 5000}, 422),
        ("/api/failures", {"state": "pwned"}, 422),
        ("/api/failures", {"cursor": _b64('{"k":"failures","at":"tomorrow","id":"x"}')}, 400),
        ("/api/audit/export", {"format": "xlsx"}, 422),
        ("/api/metrics/summary", {"hours": -1}, 422),
    ],
)
async def test_hostile_parameters_get_clear_errors(
    api: httpx.AsyncClient, path: str, params: dict[str, object], status: int
) -> None:
    response = await api.get(path, params=params)  # type: ignore[arg-type]
    assert response.status_code == status, response.text
    assert response.json()["detail"]


async def test_sql_looking_values_are_only_values(api: httpx.AsyncClient) -> None:
    for value in ("' OR '1'='1", "acme/repo-0'; DELETE FROM audit_log; --", "%", "\\x00"):
        response = await api.get("/api/audit", params={"repository": value, "actor": value})
        assert response.status_code == 200 and response.json()["items"] == []
    assert (await api.get("/api/failures/' OR 1=1 --")).status_code == 404
    assert len((await api.get("/api/audit", params={"limit": 500})).json()["items"]) == len(EVENTS)


async def test_export_streams_csv_and_jsonl(api: httpx.AsyncClient) -> None:
    jsonl = await api.get("/api/audit/export", params={"format": "jsonl"})
    lines = [json.loads(line) for line in jsonl.text.splitlines()]
    assert [r["event_id"] for r in lines] == [e.event_id for e in EVENTS]
    response = await api.get("/api/audit/export", params={"format": "csv", "action": "GateDecided"})
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert len(rows) == 2 * len(PATHS) and json.loads(rows[0]["details"])["payload"]["risk_threshold"] == 4


async def test_metrics_summary(api: httpx.AsyncClient) -> None:
    body = (await api.get("/api/metrics/summary", params={"hours": 24 * 90})).json()
    assert body["total_failures"] == 2 * len(PATHS)
    assert body["by_state"] == {
        "expired": 2,
        "no_action": 2,
        "rejected": 2,
        "remediated": 4,
        "remediation_failed": 2,
    }
    assert body["success_rate"] == pytest.approx(4 / 6, abs=1e-3)
    assert body["avg_resolution_seconds"] > 0
    assert set(body["by_risk"]) == {"2", "7"} and sum(body["by_category"].values()) == 2 * len(PATHS)
    assert body["approvals"] == {"granted": 2, "rejected": 2, "expired": 2}
    assert body["model_calls"] + body["cache_hits"] + body["rule_matches"] == 2 * len(PATHS)
    assert body["mean_approval_wait_seconds"] == pytest.approx(30, abs=1)
    assert set(body["by_repository"]) == {"acme/repo-0", "acme/repo-1", "acme/repo-2"}


async def test_openapi_documents_the_api(api: httpx.AsyncClient) -> None:
    spec = (await api.get("/openapi.json")).json()
    for path in ("/api/audit", "/api/audit/export", "/api/failures", "/api/failures/{failure_id}"):
        assert path in spec["paths"]
    assert "AuditPage" in spec["components"]["schemas"]
    assert "MetricsSummary" in spec["components"]["schemas"]
