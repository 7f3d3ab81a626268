"""The audit log's hash chain: each row's hash covers its content and the previous hash.

An auditor can then prove the log was not edited after the fact: changing a row breaks
its own hash, deleting one leaves a gap in the dense ids (or a broken link), and a row
slipped in breaks the link of the row after it, or sits past the recorded chain head, or
has no tracking row (the projector never wrote it).

Limit: someone with write access who rewrites every later hash *and* the chain head and
tracking rows can forge a consistent log; anchoring the head outside the database closes that.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from json.encoder import c_make_encoder, encode_basestring  # type: ignore[attr-defined]
from typing import Any, Literal

import asyncpg

GENESIS_HASH = "0" * 64


def canonical_time(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def row_hash(
    prev_hash: str,
    *,
    id: int,
    event_id: str,
    occurred_at: datetime,
    actor: str,
    action: str,
    outcome: str | None,
    failure_id: str,
    repository: str | None,
    details: Any,
) -> str:
    """sha256 over the previous hash and a canonical JSON of the row's content."""
    content = [
        id,
        event_id,
        canonical_time(occurred_at),
        actor,
        action,
        outcome,
        failure_id,
        repository,
        details,
    ]
    text = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(f"{prev_hash}\n{text}".encode()).hexdigest()


_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)
_ONE_SHOT = (
    None
    if c_make_encoder is None
    else c_make_encoder(None, _CANONICAL.default, encode_basestring, None, ":", ",", True, False, True)
)
"""The C encoder ``_CANONICAL.encode`` builds on every call (with these very arguments), built
once: a third of the encoding's cost for an audit row's details. Without the circular-reference
check (``markers=None``): the details are JSON-mode dumps of events and never cyclic."""


def canonical_json(value: Any) -> str:
    """The JSON :func:`row_hash` hashes, for one value (the details, written to jsonb as is).

    Byte for byte ``_CANONICAL.encode(value)`` (a property test holds them equal)."""
    if _ONE_SHOT is None:
        return _CANONICAL.encode(value)
    return "".join(_ONE_SHOT(value, 0))


def content_head(
    *,
    event_id: str,
    occurred_at: datetime,
    actor: str,
    action: str,
    outcome: str | None,
    failure_id: str,
    repository: str | None,
) -> str:
    """The part of a row's canonical JSON between its id and its details, encoded once
    before the batch's transaction so only :func:`linked_hash` runs under the chain lock.

    Every part is a string or None, so it is the strings encoded as the JSON encoder does
    (``encode_basestring``), between commas: the encoder's own output, without the encoder."""
    head = (event_id, canonical_time(occurred_at), actor, action, outcome, failure_id, repository)
    return ",".join(["null" if text is None else encode_basestring(text) for text in head])


def linked_hash(prev_hash: str, row_id: int, head: str, details_json: str) -> str:
    """:func:`row_hash` from pre-encoded parts: ``[id,<head>,<details>]`` is the same text."""
    return hashlib.sha256(f"{prev_hash}\n[{row_id},{head},{details_json}]".encode()).hexdigest()


Problem = Literal["altered", "inserted", "deleted"]


@dataclass(frozen=True)
class UnappliedRow:
    """An event the projector could not apply, recorded in the chain instead of dropped."""

    row_id: int
    event_id: str
    event_type: str
    reason: str


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    rows_checked: int
    problem: Problem | None = None
    row_id: int | None = None
    detail: str = ""
    unapplied: tuple[UnappliedRow, ...] = ()
    """Intact or not, the chain holds these events only as "could not apply" (their views lack them)."""


_ROWS = """
SELECT a.id, a.event_id, a.occurred_at, a.actor, a.action, a.outcome, a.failure_id, a.repository,
       a.details, a.prev_hash, a.row_hash, (t.event_id IS NOT NULL) AS tracked
FROM audit_log a
LEFT JOIN projector_tracking t ON t.event_id = a.event_id AND t.consumer = $1
ORDER BY a.id
"""


_UNAPPLIED = """
SELECT id, event_id, details->>'event_type' AS event_type, details->>'reason' AS reason
FROM audit_log WHERE action = 'EventUnapplied' ORDER BY id
"""


async def verify_chain(pool: asyncpg.Pool, *, consumer: str = "projector") -> VerifyResult:
    """Walk the chain in id order; name the first row that was altered, inserted or deleted,
    and list every event recorded as unapplied."""
    result = await _walk(pool, consumer)
    rows = await pool.fetch(_UNAPPLIED)
    unapplied = tuple(
        UnappliedRow(int(r["id"]), r["event_id"], r["event_type"] or "", r["reason"] or "") for r in rows
    )
    return replace(result, unapplied=unapplied)


async def _walk(pool: asyncpg.Pool, consumer: str) -> VerifyResult:
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        head = await conn.fetchrow("SELECT last_id, last_hash FROM audit_chain_head")
        expected_id, prev, checked = 1, GENESIS_HASH, 0
        last_id = int(head["last_id"]) if head else 0
        async for row in conn.cursor(_ROWS, consumer, prefetch=2000):
            found = _check_row(row, expected_id, prev)
            if found is None and int(row["id"]) > last_id:
                found = ("inserted", int(row["id"]), f"row is past the chain head (last id {last_id})")
            if found is not None:
                return VerifyResult(False, checked, *found)
            expected_id, prev, checked = int(row["id"]) + 1, str(row["row_hash"]), checked + 1
        if last_id >= expected_id:
            return VerifyResult(
                False, checked, "deleted", expected_id, f"rows {expected_id}..{last_id} are missing"
            )
        if head is not None and checked and head["last_hash"] != prev:
            return VerifyResult(
                False, checked, "altered", expected_id - 1, "last row differs from the chain head"
            )
        return VerifyResult(True, checked)


def _check_row(row: asyncpg.Record, expected_id: int, prev: str) -> tuple[Problem, int, str] | None:
    row_id = int(row["id"])
    if row_id < expected_id:  # cannot happen with a primary key; kept for ids forced below 1
        return "inserted", row_id, "row id below the chain start"
    if row_id > expected_id:
        return "deleted", expected_id, f"ids {expected_id}..{row_id - 1} are missing"
    if not row["tracked"]:
        return "inserted", row_id, "no projector tracking row: the projector never wrote this row"
    computed = row_hash(
        str(row["prev_hash"]),
        id=row_id,
        event_id=row["event_id"],
        occurred_at=row["occurred_at"],
        actor=row["actor"],
        action=row["action"],
        outcome=row["outcome"],
        failure_id=row["failure_id"],
        repository=row["repository"],
        details=row["details"],
    )
    if computed != row["row_hash"]:
        return "altered", row_id, "content does not match its hash"
    if row["prev_hash"] != prev:
        return "altered", row_id - 1, f"row {row_id} links to a hash that row {row_id - 1} no longer has"
    return None
