"""Read side: audit log, failures and their timeline, with keyset pagination.

Every filter is a bound parameter; column names come from this module only. Cursors are
opaque to clients (url-safe base64 of a small JSON) and are validated strictly, because
they come back from the outside world.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import asyncpg

Order = Literal["asc", "desc"]
MAX_LIMIT = 500


class CursorError(ValueError):
    """A cursor this API did not hand out (or one for another listing)."""


def encode_cursor(kind: str, **position: Any) -> str:
    raw = json.dumps({"k": kind, **position}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, kind: str) -> dict[str, Any]:
    if len(cursor) > 512:
        raise CursorError("cursor is too long")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = json.loads(raw)
    except (binascii.Error, ValueError) as exc:
        raise CursorError("cursor is not one this API handed out") from exc
    if not isinstance(data, dict) or data.get("k") != kind:
        raise CursorError("cursor belongs to another listing")
    return data


@dataclass(frozen=True)
class AuditFilter:
    start: datetime | None = None
    end: datetime | None = None
    action: str | None = None
    repository: str | None = None
    failure_id: str | None = None
    actor: str | None = None
    outcome: str | None = None

    def where(self, args: list[Any]) -> list[str]:
        """SQL conditions for the set filters, appending their values to ``args``."""
        conditions: list[str] = []
        for column, op, value in (
            ("occurred_at", ">=", self.start),
            ("occurred_at", "<", self.end),
            ("action", "=", self.action),
            ("repository", "=", self.repository),
            ("failure_id", "=", self.failure_id),
            ("actor", "=", self.actor),
            ("outcome", "=", self.outcome),
        ):
            if value is not None:
                args.append(value)
                conditions.append(f"{column} {op} ${len(args)}")
        return conditions


@dataclass
class Page:
    items: list[dict[str, Any]] = field(default_factory=list)
    next_cursor: str | None = None


AUDIT_COLUMNS = (
    "id, event_id, occurred_at, actor, action, outcome, failure_id, repository, details, prev_hash, row_hash"
)


async def query_logs(
    pool: asyncpg.Pool,
    *,
    filters: AuditFilter | None = None,
    limit: int = 100,
    cursor: str | None = None,
    order: Order = "asc",
) -> Page:
    """One page of audit rows in chain order (``desc``: newest first)."""
    if not 1 <= limit <= MAX_LIMIT:
        raise ValueError(f"limit must be between 1 and {MAX_LIMIT}")
    args: list[Any] = []
    conditions = (filters or AuditFilter()).where(args)
    if cursor is not None:
        position = decode_cursor(cursor, f"audit-{order}")
        after = position.get("id")
        if not isinstance(after, int) or isinstance(after, bool) or after < 0:
            raise CursorError("cursor is not one this API handed out")
        args.append(after)
        conditions.append(f"id {'>' if order == 'asc' else '<'} ${len(args)}")
    args.append(limit + 1)
    sql = (
        f"SELECT {AUDIT_COLUMNS} FROM audit_log"  # noqa: S608 - conditions are built from fixed names
        f" {'WHERE ' + ' AND '.join(conditions) if conditions else ''}"
        f" ORDER BY id {order.upper()} LIMIT ${len(args)}"
    )
    rows = [dict(r) for r in await pool.fetch(sql, *args)]
    next_cursor = encode_cursor(f"audit-{order}", id=rows[limit - 1]["id"]) if len(rows) > limit else None
    return Page(items=rows[:limit], next_cursor=next_cursor)


async def iter_logs(pool: asyncpg.Pool, filters: AuditFilter) -> AsyncIterator[dict[str, Any]]:
    """Every matching audit row in chain order, streamed from a server-side cursor."""
    args: list[Any] = []
    conditions = filters.where(args)
    sql = (
        f"SELECT {AUDIT_COLUMNS} FROM audit_log"  # noqa: S608 - conditions are built from fixed names
        f" {'WHERE ' + ' AND '.join(conditions) if conditions else ''} ORDER BY id"
    )
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        async for row in conn.cursor(sql, *args, prefetch=1000):
            yield dict(row)


async def list_failures(
    pool: asyncpg.Pool,
    *,
    state: str | None = None,
    repository: str | None = None,
    limit: int = 100,
    cursor: str | None = None,
) -> Page:
    """Failures, newest first (by the first event seen of each)."""
    if not 1 <= limit <= MAX_LIMIT:
        raise ValueError(f"limit must be between 1 and {MAX_LIMIT}")
    args: list[Any] = []
    conditions: list[str] = []
    for column, value in (("state", state), ("repository", repository)):
        if value is not None:
            args.append(value)
            conditions.append(f"{column} = ${len(args)}")
    if cursor is not None:
        at, failure_id = _failure_position(decode_cursor(cursor, "failures"))
        args += [at, failure_id]
        conditions.append(f"(first_seen_at, failure_id) < (${len(args) - 1}, ${len(args)})")
    args.append(limit + 1)
    sql = (
        "SELECT * FROM failures"  # noqa: S608 - conditions are built from fixed names
        f" {'WHERE ' + ' AND '.join(conditions) if conditions else ''}"
        f" ORDER BY first_seen_at DESC, failure_id DESC LIMIT ${len(args)}"
    )
    rows = [dict(r) for r in await pool.fetch(sql, *args)]
    next_cursor = None
    if len(rows) > limit:
        last = rows[limit - 1]
        next_cursor = encode_cursor("failures", at=last["first_seen_at"].isoformat(), id=last["failure_id"])
    return Page(items=rows[:limit], next_cursor=next_cursor)


def _failure_position(position: dict[str, Any]) -> tuple[datetime, str]:
    try:
        at = datetime.fromisoformat(str(position["at"]))
        failure_id = position["id"]
    except (KeyError, ValueError) as exc:
        raise CursorError("cursor is not one this API handed out") from exc
    if not isinstance(failure_id, str) or at.tzinfo is None:
        raise CursorError("cursor is not one this API handed out")
    return at.astimezone(UTC), failure_id


async def get_failure(pool: asyncpg.Pool, failure_id: str) -> dict[str, Any] | None:
    """The failure row and its whole audit timeline, or None when unknown."""
    row = await pool.fetchrow("SELECT * FROM failures WHERE failure_id = $1", failure_id)
    if row is None:
        return None
    timeline = await pool.fetch(
        f"SELECT {AUDIT_COLUMNS} FROM audit_log WHERE failure_id = $1 ORDER BY occurred_at, id",  # noqa: S608
        failure_id,
    )
    return {"failure": dict(row), "timeline": [dict(r) for r in timeline]}
