"""HTTP query API over the projector's views (mounted by the service host).

Parameters are validated at the edge: FastAPI answers 422 for malformed values (bad dates,
out-of-range limits, unknown states or actions) and this module answers 400 for cursors it
did not hand out. Filter values reach SQL only as bound parameters.
"""

# No `from __future__ import annotations`: FastAPI must see the real Annotated aliases
# declared inside build_router, which string annotations would hide.

import csv
import io
import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import asyncpg
from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict

from medic.events import EVENT_TYPE_NAMES
from medic.services.projector.metrics import metrics_summary
from medic.services.projector.projection import FailureState
from medic.services.projector.queries import (
    MAX_LIMIT,
    AuditFilter,
    CursorError,
    Order,
    get_failure,
    iter_logs,
    list_failures,
    query_logs,
)
from medic.services.projector.unapplied import UNAPPLIED_ACTION


class AuditItem(BaseModel):
    id: int
    event_id: str
    occurred_at: datetime
    actor: str
    action: str
    outcome: str | None
    failure_id: str
    repository: str | None
    details: dict[str, Any]
    prev_hash: str
    row_hash: str


class AuditPage(BaseModel):
    items: list[AuditItem]
    next_cursor: str | None


class FailureRow(BaseModel):
    model_config = ConfigDict(extra="allow")

    failure_id: str
    repository: str | None
    run_id: int | None
    run_attempt: int | None
    workflow_name: str | None
    branch: str | None
    state: FailureState
    category: str | None
    risk: int | None
    confidence: float | None
    method: str | None
    fingerprint: str | None
    proposed_action: str | None
    gate_outcome: str | None
    gate_reasons: list[str] | None
    approval_id: str | None
    approval_outcome: str | None
    approver: str | None
    remediation_action: str | None
    remediation_outcome: str | None
    first_seen_at: datetime
    last_event_at: datetime
    detected_at: datetime | None
    analyzed_at: datetime | None
    decided_at: datetime | None
    approval_requested_at: datetime | None
    approval_decided_at: datetime | None
    remediation_started_at: datetime | None
    settled_at: datetime | None


class FailurePage(BaseModel):
    items: list[FailureRow]
    next_cursor: str | None


class FailureDetail(BaseModel):
    failure: FailureRow
    timeline: list[AuditItem]


class MetricsSummary(BaseModel):
    """The documented keys; more keys may be added (``extra`` is kept)."""

    model_config = ConfigDict(extra="allow")

    total_failures: int
    by_state: dict[str, int]
    success_rate: float | None
    avg_resolution_seconds: float | None
    by_category: dict[str, int]
    by_risk: dict[str, int]


AUDIT_ACTIONS = (*EVENT_TYPE_NAMES, UNAPPLIED_ACTION)
"""What an audit row's ``action`` can be: an event type, or an event the projector could not apply."""

Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description=f"page size, at most {MAX_LIMIT}")]
Text = Annotated[str | None, Query(min_length=1, max_length=200)]
Cursor = Annotated[str | None, Query(max_length=512, description="next_cursor of the previous page")]


def _utc(value: datetime | None) -> datetime | None:
    """Times without a zone are read as UTC, the zone of every stored timestamp."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def audit_filter(
    start: Annotated[datetime | None, Query(description="occurred_at >= start (ISO 8601)")] = None,
    end: Annotated[datetime | None, Query(description="occurred_at < end (ISO 8601)")] = None,
    action: Annotated[str | None, Query(description=f"event type: one of {', '.join(AUDIT_ACTIONS)}")] = None,
    repository: Text = None,
    failure_id: Text = None,
    actor: Text = None,
    outcome: Text = None,
) -> AuditFilter:
    if action is not None and action not in AUDIT_ACTIONS:
        raise HTTPException(422, f"action must be one of {', '.join(AUDIT_ACTIONS)}")
    start, end = _utc(start), _utc(end)
    if start is not None and end is not None and end <= start:
        raise HTTPException(422, "end must be after start")
    return AuditFilter(start, end, action, repository, failure_id, actor, outcome)


def build_router(get_pool: Callable[[], asyncpg.Pool]) -> APIRouter:
    """The router over the pool ``get_pool`` returns (503 while the projector is not started)."""
    router = APIRouter(prefix="/api", tags=["audit"])

    def pool() -> asyncpg.Pool:
        try:
            return get_pool()
        except RuntimeError as exc:
            raise HTTPException(503, "the projector is not started") from exc

    Pool = Annotated[asyncpg.Pool, Depends(pool)]
    Filter = Annotated[AuditFilter, Depends(audit_filter)]

    @router.get("/audit", response_model=AuditPage, summary="Audit log, in chain order")
    async def audit(
        db: Pool, filters: Filter, limit: Limit = 100, cursor: Cursor = None, order: Order = "asc"
    ) -> dict[str, Any]:
        try:
            page = await query_logs(db, filters=filters, limit=limit, cursor=cursor, order=order)
        except CursorError as exc:
            raise HTTPException(400, f"bad cursor: {exc}") from exc
        return {"items": page.items, "next_cursor": page.next_cursor}

    @router.get("/audit/export", summary="Every matching audit row, streamed as CSV or JSON lines")
    async def export(
        db: Pool,
        filters: Filter,
        format: Literal["csv", "jsonl"] = "jsonl",
    ) -> StreamingResponse:
        rows = iter_logs(db, filters)
        if format == "csv":
            return StreamingResponse(_csv(rows), media_type="text/csv", headers=_attachment("audit.csv"))
        return StreamingResponse(
            _jsonl(rows), media_type="application/x-ndjson", headers=_attachment("audit.jsonl")
        )

    @router.get("/failures", response_model=FailurePage, summary="Failures, newest first")
    async def failures(
        db: Pool,
        state: FailureState | None = None,
        repository: Text = None,
        limit: Limit = 100,
        cursor: Cursor = None,
    ) -> dict[str, Any]:
        try:
            page = await list_failures(
                db, state=state.value if state else None, repository=repository, limit=limit, cursor=cursor
            )
        except CursorError as exc:
            raise HTTPException(400, f"bad cursor: {exc}") from exc
        return {"items": page.items, "next_cursor": page.next_cursor}

    @router.get(
        "/failures/{failure_id}", response_model=FailureDetail, summary="One failure and its timeline"
    )
    async def failure(db: Pool, failure_id: str) -> dict[str, Any]:
        found = await get_failure(db, failure_id[:200])
        if found is None:
            raise HTTPException(404, f"no failure {failure_id[:80]!r}")
        return found

    @router.get("/metrics/summary", response_model=MetricsSummary, tags=["metrics"])
    async def summary(
        db: Pool, hours: Annotated[int, Query(ge=1, le=24 * 90, description="hourly series window")] = 48
    ) -> dict[str, Any]:
        return await metrics_summary(db, hours=hours)

    return router


def _attachment(name: str) -> dict[str, str]:
    return {"Content-Disposition": f'attachment; filename="{name}"'}


def _plain(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in row.items()}


async def _jsonl(rows: AsyncIterator[dict[str, Any]]) -> AsyncIterator[bytes]:
    async for row in rows:
        yield (json.dumps(_plain(row), separators=(",", ":"), ensure_ascii=False) + "\n").encode()


async def _csv(rows: AsyncIterator[dict[str, Any]]) -> AsyncIterator[bytes]:
    buffer = io.StringIO()
    writer: csv.DictWriter[str] | None = None
    async for row in rows:
        flat = _plain(row)
        flat["details"] = json.dumps(flat["details"], separators=(",", ":"), ensure_ascii=False)
        if writer is None:
            writer = csv.DictWriter(buffer, fieldnames=list(flat))
            writer.writeheader()
        writer.writerow(flat)
        yield buffer.getvalue().encode()
        buffer.seek(0)
        buffer.truncate()
