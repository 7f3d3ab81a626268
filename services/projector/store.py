"""Applying projections to PostgreSQL: tracking row, audit chain and failures in one transaction.

The tracking row (consumer, event_id) is written first; an event already tracked is
skipped, so a redelivered or replayed event changes nothing the second time. Audit rows
are appended under the chain-head row lock, which serialises the chain across handlers
and replicas. A batch goes through the set-based path of :mod:`.batch`; the row path here
(one statement per row, one event per transaction) is what isolates an event that cannot
be stored, so its reason is recorded exactly as it always was, and it is the reference
the set-based path is tested against.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any, NamedTuple

from medic.db import Conn
from medic.events import Event
from medic.services.projector.batch import Entry, entry_of_event, entry_of_unapplied, write_batch
from medic.services.projector.chain import row_hash
from medic.services.projector.projection import AuditEntry, FailureChange, project
from medic.services.projector.unapplied import (
    PERMANENT_ERRORS,
    Unapplied,
    Unreadable,
    of_event,
    of_unreadable,
)
from medic.telemetry import logger

log = logger(__name__)

CONSUMER = "projector"
_COPY_THRESHOLD = 16
"""Below this many rows an INSERT is cheaper than setting up a COPY."""

_AUDIT_COLUMNS = (
    "id",
    "event_id",
    "occurred_at",
    "actor",
    "action",
    "outcome",
    "failure_id",
    "repository",
    "details",
    "prev_hash",
    "row_hash",
)

_TRACK = """
INSERT INTO projector_tracking (consumer, event_id, stream_seq, event_type, occurred_at)
SELECT $1, e.id, e.seq, e.type, e.at
FROM unnest($2::text[], $3::bigint[], $4::text[], $5::timestamptz[]) AS e(id, seq, type, at)
ON CONFLICT (consumer, event_id) DO NOTHING
RETURNING event_id
"""


async def apply_events(conn: Conn, items: Sequence[tuple[Event, int]], *, consumer: str = CONSUMER) -> int:
    """Apply ``(event, stream_seq)`` pairs in one transaction (set-based); return how many were new.

    Raises for an event that cannot be stored; :func:`apply_or_record` records it instead.
    """
    entries = [entry_of_event(event, seq) for event, seq in items]
    return len(await write_batch(conn, entries, consumer=consumer))


Received = tuple[Event | Unreadable, int, datetime]
"""A message as the projector got it: the event (or what could not be read), stream sequence, time."""


class Prepared(NamedTuple):
    """Received messages with their entries built (no database needed), or None when some
    message cannot be projected: then the batch goes the row path, message by message."""

    items: Sequence[Received]
    entries: list[Entry] | None


def prepare(items: Sequence[Received]) -> Prepared:
    """The CPU-side work of a batch, done before (and, in a replay, beside) the database's."""
    try:
        entries = [
            entry_of_unapplied(of_unreadable(item, seq, at))
            if isinstance(item, Unreadable)
            else entry_of_event(item, seq)
            for item, seq, at in items
        ]
    except PERMANENT_ERRORS:
        return Prepared(items, None)
    return Prepared(items, entries)


async def apply_or_record(conn: Conn, items: Sequence[Received], *, consumer: str = CONSUMER) -> int:
    """Apply what can be applied; record every other message as unapplied. Never drops one."""
    return await apply_prepared(conn, prepare(items), consumer=consumer)


async def apply_prepared(conn: Conn, prepared: Prepared, *, consumer: str = CONSUMER) -> int:
    """The batch in one transaction, in stream order; if it fails for a reason that would fail
    again (see :data:`PERMANENT_ERRORS`), each message alone on the row path, those that still
    fail recorded with their reason. Transient errors propagate, for redelivery.
    Returns how many messages were new (applied or recorded).
    """
    if prepared.entries is not None:
        try:
            fresh = await write_batch(conn, prepared.entries, consumer=consumer)
        except PERMANENT_ERRORS:
            pass
        else:
            _log_unapplied([e.unapplied for e in fresh if e.unapplied is not None])
            return len(fresh)
    new = 0
    for item, seq, at in prepared.items:
        if isinstance(item, Unreadable):
            new += await record_unapplied(conn, [of_unreadable(item, seq, at)], consumer=consumer)
            continue
        try:
            new += await apply_rowwise(conn, [(item, seq)], consumer=consumer)
        except PERMANENT_ERRORS as exc:
            new += await record_unapplied(conn, [of_event(item, seq, exc)], consumer=consumer)
    return new


async def apply_rowwise(conn: Conn, items: Sequence[tuple[Event, int]], *, consumer: str = CONSUMER) -> int:
    """The row path: ``(event, stream_seq)`` pairs in one transaction, a statement per row."""
    unique: dict[str, tuple[Event, int]] = {}
    for event, seq in items:
        unique.setdefault(event.event_id, (event, seq))
    async with conn.transaction():
        rows = await conn.fetch(
            _TRACK,
            consumer,
            list(unique),
            [seq for _, seq in unique.values()],
            [e.event_type for e, _ in unique.values()],
            [e.occurred_at for e, _ in unique.values()],
        )
        fresh = {r["event_id"] for r in rows}
        projections = [project(e) for e, _ in unique.values() if e.event_id in fresh]
        if not projections:
            return 0
        await _append_audit(conn, [p.audit for p in projections])
        await _upsert_failures(conn, [p.failure for p in projections if p.failure is not None])
    return len(projections)


async def record_unapplied(conn: Conn, items: Sequence[Unapplied], *, consumer: str = CONSUMER) -> int:
    """Tracking and audit rows for messages that could not be applied (once each, like events)."""
    unique = {u.event_id: u for u in items}
    if not unique:
        return 0
    async with conn.transaction():
        rows = await conn.fetch(
            _TRACK,
            consumer,
            list(unique),
            [u.stream_seq for u in unique.values()],
            [u.event_type for u in unique.values()],
            [u.occurred_at for u in unique.values()],
        )
        fresh = [unique[r["event_id"]] for r in rows]
        if fresh:
            await _append_audit(conn, [u.audit() for u in fresh])
    _log_unapplied(fresh)
    return len(fresh)


def _log_unapplied(items: Sequence[Unapplied]) -> None:
    for u in items:
        log.error("event_unapplied", event_id=u.event_id, stream_seq=u.stream_seq, reason=u.reason[:300])


async def _append_audit(conn: Conn, entries: Sequence[AuditEntry]) -> None:
    head = await conn.fetchrow("SELECT last_id, last_hash FROM audit_chain_head FOR UPDATE")
    if head is None:
        raise RuntimeError("audit_chain_head is empty: the schema was not migrated")
    last_id, last_hash = int(head["last_id"]), str(head["last_hash"])
    records: list[tuple[Any, ...]] = []
    for a in entries:
        last_id += 1
        content: dict[str, Any] = {
            "id": last_id,
            "event_id": a.event_id,
            "occurred_at": a.occurred_at,
            "actor": a.actor,
            "action": a.action,
            "outcome": a.outcome,
            "failure_id": a.failure_id,
            "repository": a.repository,
            "details": a.details,
        }
        digest = row_hash(last_hash, **content)
        records.append((*content.values(), last_hash, digest))
        last_hash = digest
    if len(records) >= _COPY_THRESHOLD:
        await conn.copy_records_to_table("audit_log", records=records, columns=_AUDIT_COLUMNS)
    else:
        placeholders = ", ".join(f"${i}" for i in range(1, len(_AUDIT_COLUMNS) + 1))
        await conn.executemany(
            f"INSERT INTO audit_log ({', '.join(_AUDIT_COLUMNS)}) VALUES ({placeholders})",  # noqa: S608 - fixed names
            records,
        )
    await conn.execute("UPDATE audit_chain_head SET last_id = $1, last_hash = $2", last_id, last_hash)


async def _upsert_failures(conn: Conn, changes: Sequence[FailureChange]) -> None:
    by_shape: dict[tuple[str, tuple[str, ...], tuple[str, ...], bool], list[FailureChange]] = defaultdict(
        list
    )
    for change in changes:
        by_shape[change.shape].append(change)
    for shape, group in by_shape.items():
        sql = _upsert_sql(*shape)
        await conn.executemany(sql, [_upsert_args(c) for c in group])


def _upsert_args(c: FailureChange) -> tuple[Any, ...]:
    settle = (c.occurred_at,) if c.settles and c.stage != "settled_at" else ()
    return (
        c.failure_id,
        c.state.value,
        c.rank,
        c.occurred_at,
        c.event_id,
        c.stage_at,
        *c.fields.values(),
        *c.identity.values(),
        *settle,
    )


@lru_cache(maxsize=64)
def _upsert_sql(stage: str, fields: tuple[str, ...], identity: tuple[str, ...], settles: bool) -> str:
    """One upsert per change shape; column names come from :mod:`.projection`, never from input."""
    settle = ("settled_at",) if settles and stage != "settled_at" else ()
    columns = (
        "failure_id",
        "state",
        "state_rank",
        "state_at",
        "state_event_id",
        stage,
        *fields,
        *identity,
        *settle,
    )
    values = ", ".join(f"${i}" for i in range(1, len(columns) + 1))
    newer = (
        "(EXCLUDED.state_rank, EXCLUDED.state_at, EXCLUDED.state_event_id)"
        " > (f.state_rank, f.state_at, f.state_event_id)"
    )
    latest = f"(f.{stage} IS NULL OR EXCLUDED.{stage} >= f.{stage})"
    sets = [f"{c} = CASE WHEN {newer} THEN EXCLUDED.{c} ELSE f.{c} END" for c in columns[1:5]]
    sets += [
        "first_seen_at = LEAST(f.first_seen_at, EXCLUDED.first_seen_at)",
        "last_event_at = GREATEST(f.last_event_at, EXCLUDED.last_event_at)",
        "event_count = f.event_count + 1",
        f"{stage} = GREATEST(f.{stage}, EXCLUDED.{stage})",
    ]
    sets += [f"{c} = CASE WHEN {latest} THEN EXCLUDED.{c} ELSE f.{c} END" for c in fields]
    sets += [f"{c} = COALESCE(f.{c}, EXCLUDED.{c})" for c in identity if c not in fields]
    sets += [f"{c} = GREATEST(f.{c}, EXCLUDED.{c})" for c in settle]
    return (
        f"INSERT INTO failures AS f ({', '.join(columns)}, first_seen_at, last_event_at)"  # noqa: S608 - fixed names
        f" VALUES ({values}, $4, $4)"
        f" ON CONFLICT (failure_id) DO UPDATE SET {', '.join(sets)}"
    )
