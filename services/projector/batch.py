"""The set-based apply: a whole batch of projections in a handful of statements.

Row by row, a batch of N events costs N tracking inserts, N audit inserts and N upserts,
each a round trip and a pass through Python. Here the Python work per event (projection,
canonical JSON of the audit row) happens once in :func:`entry_of_event`, before any
transaction, and the transaction then does only what needs the database: one tracking
insert that says which events are new, the hash chain over the new ones (a sha256 each),
one audit insert, one read of the failures rows the batch touches, their fold in Python
(:mod:`.merge`) and one upsert. The live projector and the replay both use it; the row
path in :mod:`.store` remains the fallback that isolates an event that cannot be stored.
"""

from __future__ import annotations

import json
import weakref
from collections.abc import Sequence
from datetime import datetime
from typing import Any, NamedTuple

from medic.db import Conn, _jsonb_decode, _jsonb_encode
from medic.events import Event
from medic.services.projector.chain import canonical_json, content_head, linked_hash
from medic.services.projector.merge import (
    FAILURE_COLUMN_NAMES,
    FAILURE_COLUMNS,
    Row,
    check_storable,
    fold,
    tied_event_ids,
)
from medic.services.projector.projection import AuditEntry, FailureChange, project
from medic.services.projector.unapplied import Unapplied


class Entry(NamedTuple):
    """One message ready to write: its tracking row, its audit row pre-encoded (the details
    as the canonical JSON the chain hashes, nothing else of them), its change."""

    event_id: str
    stream_seq: int
    event_type: str
    occurred_at: datetime
    actor: str
    action: str
    outcome: str | None
    failure_id: str
    repository: str | None
    head: str
    details_json: str
    change: FailureChange | None
    unapplied: Unapplied | None


def entry_of_event(event: Event, stream_seq: int) -> Entry:
    """Raises what the row path would (a PERMANENT_ERRORS kind) for an event it cannot store."""
    projection = project(event)
    if projection.failure is not None:
        check_storable(projection.failure)
    return _entry(event.event_type, stream_seq, projection.audit, projection.failure, None)


def entry_of_unapplied(u: Unapplied) -> Entry:
    return _entry(u.event_type, u.stream_seq, u.audit(), None, u)


def _entry(
    event_type: str, seq: int, a: AuditEntry, change: FailureChange | None, u: Unapplied | None
) -> Entry:
    head = content_head(
        event_id=a.event_id,
        occurred_at=a.occurred_at,
        actor=a.actor,
        action=a.action,
        outcome=a.outcome,
        failure_id=a.failure_id,
        repository=a.repository,
    )
    return Entry(
        a.event_id,
        seq,
        event_type,
        a.occurred_at,
        a.actor,
        a.action,
        a.outcome,
        a.failure_id,
        a.repository,
        head,
        canonical_json(a.details),
        change,
        u,
    )


_TRACK = """
INSERT INTO projector_tracking (consumer, event_id, stream_seq, event_type, occurred_at)
SELECT $1, e.id, e.seq, e.type, e.at
FROM unnest($2::text[], $3::bigint[], $4::text[], $5::timestamptz[]) AS e(id, seq, type, at)
ON CONFLICT (consumer, event_id) DO NOTHING
RETURNING event_id
"""

_AUDIT = """
INSERT INTO audit_log (id, event_id, occurred_at, actor, action, outcome, failure_id, repository,
                       details, prev_hash, row_hash)
SELECT a.id, a.event_id, a.occurred_at, a.actor, a.action, a.outcome, a.failure_id, a.repository,
       a.details::jsonb, a.prev_hash, a.row_hash
FROM unnest($1::bigint[], $2::text[], $3::timestamptz[], $4::text[], $5::text[], $6::text[],
            $7::text[], $8::text[], $9::text[], $10::text[], $11::text[])
     AS a(id, event_id, occurred_at, actor, action, outcome, failure_id, repository,
          details, prev_hash, row_hash)
"""


def _failures_upsert() -> str:
    names = ", ".join(FAILURE_COLUMN_NAMES)
    arrays = ", ".join(
        f"${i}::{'text' if kind == 'jsonb' else kind}[]" for i, (_, kind) in enumerate(FAILURE_COLUMNS, 1)
    )
    picks = ", ".join(f"u.{n}::jsonb" if kind == "jsonb" else f"u.{n}" for n, kind in FAILURE_COLUMNS)
    sets = ", ".join(f"{name} = EXCLUDED.{name}" for name in FAILURE_COLUMN_NAMES[1:])
    return (
        f"INSERT INTO failures ({names}) SELECT {picks} FROM unnest({arrays}) AS u({names})"  # noqa: S608 - fixed names
        f" ON CONFLICT (failure_id) DO UPDATE SET {sets}"
    )


_UPSERT = _failures_upsert()
_JSON_COLUMNS = frozenset(name for name, kind in FAILURE_COLUMNS if kind == "jsonb")


COPY_AT_LEAST = 64
"""From this many messages a batch is written with COPY; below it, COPY's set-up costs more."""

_TRACKED = "SELECT event_id FROM projector_tracking WHERE consumer = $1 AND event_id = ANY($2::text[])"
_TRACKING_COLUMNS = ("consumer", "event_id", "stream_seq", "event_type", "occurred_at")
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


class CanonicalJson(str):
    """JSON text already encoded for the hash, written to a jsonb column as it is (not again)."""


def _encode_jsonb(value: Any) -> bytes:
    return b"\x01" + value.encode() if isinstance(value, CanonicalJson) else _jsonb_encode(value)


_PASSES_CANONICAL_JSON: weakref.WeakSet[Any] = weakref.WeakSet()


async def _pass_canonical_json(conn: Conn) -> None:
    """The pool's jsonb codec, taught to take :class:`CanonicalJson` as it is (once per connection)."""
    raw = getattr(conn, "_con", None) or conn  # a pool hands out a proxy around the connection
    if raw in _PASSES_CANONICAL_JSON:
        return
    await conn.set_type_codec(
        "jsonb", encoder=_encode_jsonb, decoder=_jsonb_decode, schema="pg_catalog", format="binary"
    )
    _PASSES_CANONICAL_JSON.add(raw)


async def write_batch(conn: Conn, entries: Sequence[Entry], *, consumer: str) -> list[Entry]:
    """Write the entries not yet tracked, in their order, in one transaction; return them.

    A large batch takes the chain-head lock first (every writer of these tables takes it),
    so it may look up which events are tracked and COPY the rest without a conflict check.
    """
    unique: dict[str, Entry] = {}
    for entry in entries:
        unique.setdefault(entry.event_id, entry)
    bulk = len(unique) >= COPY_AT_LEAST
    if bulk:
        await _pass_canonical_json(conn)
    async with conn.transaction():
        if bulk:
            head = await _lock_chain(conn)
            known = {r[0] for r in await conn.fetch(_TRACKED, consumer, list(unique))}
            fresh = [e for e in unique.values() if e.event_id not in known]
            if fresh:
                records = [(consumer, e.event_id, e.stream_seq, e.event_type, e.occurred_at) for e in fresh]
                await conn.copy_records_to_table(
                    "projector_tracking", records=records, columns=_TRACKING_COLUMNS
                )
        else:
            tracked = await conn.fetch(
                _TRACK,
                consumer,
                list(unique),
                [e.stream_seq for e in unique.values()],
                [e.event_type for e in unique.values()],
                [e.occurred_at for e in unique.values()],
            )
            new_ids = {r[0] for r in tracked}
            fresh = [e for e in unique.values() if e.event_id in new_ids]
            head = await _lock_chain(conn) if fresh else (0, "")
        if not fresh:
            return []
        await _append_chain(conn, head, fresh, bulk=bulk)
        changes = [e.change for e in fresh if e.change is not None]
        if changes:
            await _upsert_failures(conn, changes, bulk=bulk)
    return fresh


async def _lock_chain(conn: Conn) -> tuple[int, str]:
    head = await conn.fetchrow("SELECT last_id, last_hash FROM audit_chain_head FOR UPDATE")
    if head is None:
        raise RuntimeError("audit_chain_head is empty: the schema was not migrated")
    return int(head["last_id"]), str(head["last_hash"])


async def _append_chain(conn: Conn, head: tuple[int, str], fresh: Sequence[Entry], *, bulk: bool) -> None:
    last_id, last_hash = head
    ids, prevs, hashes = [], [], []
    for e in fresh:
        last_id += 1
        ids.append(last_id)
        prevs.append(last_hash)
        last_hash = linked_hash(last_hash, last_id, e.head, e.details_json)
        hashes.append(last_hash)
    if bulk:
        records = []
        for row_id, e, prev, digest in zip(ids, fresh, prevs, hashes, strict=True):
            row = (row_id, e.event_id, e.occurred_at, e.actor, e.action, e.outcome, e.failure_id)
            records.append((*row, e.repository, CanonicalJson(e.details_json), prev, digest))
        await conn.copy_records_to_table("audit_log", records=records, columns=_AUDIT_COLUMNS)
    else:
        await conn.execute(
            _AUDIT,
            ids,
            [e.event_id for e in fresh],
            [e.occurred_at for e in fresh],
            [e.actor for e in fresh],
            [e.action for e in fresh],
            [e.outcome for e in fresh],
            [e.failure_id for e in fresh],
            [e.repository for e in fresh],
            [e.details_json for e in fresh],
            prevs,
            hashes,
        )
    await conn.execute("UPDATE audit_chain_head SET last_id = $1, last_hash = $2", last_id, last_hash)


async def _upsert_failures(conn: Conn, changes: Sequence[FailureChange], *, bulk: bool) -> None:
    """Fold the changes into the rows they touch and write each row once.

    The chain-head lock held by the caller serialises every writer of ``failures``, so the
    rows read here cannot change before they are written back, and rows not there yet can
    be copied in without a conflict check.
    """
    touched = list(dict.fromkeys(c.failure_id for c in changes))
    records = await conn.fetch("SELECT * FROM failures WHERE failure_id = ANY($1::text[])", touched)
    rows: dict[str, Row] = {r["failure_id"]: dict(r) for r in records}
    existed = set(rows)
    order: dict[str, int] = {}
    tied = tied_event_ids(rows, changes)
    if tied:  # rare: the database's collation decides, as it does for the row path
        ranked = await conn.fetch("SELECT e FROM unnest($1::text[]) AS e ORDER BY e", sorted(tied))
        order = {r[0]: i for i, r in enumerate(ranked, 1)}
    for c in changes:
        rows[c.failure_id] = fold(rows.get(c.failure_id), c, order)
    if bulk:
        new = [tuple(row.values()) for failure_id, row in rows.items() if failure_id not in existed]
        if new:
            await conn.copy_records_to_table("failures", records=new, columns=FAILURE_COLUMN_NAMES)
        rows = {failure_id: rows[failure_id] for failure_id in existed}
        if not rows:
            return
    columns: list[list[Any]] = [[row[name] for row in rows.values()] for name in FAILURE_COLUMN_NAMES]
    for i, name in enumerate(FAILURE_COLUMN_NAMES):
        if name in _JSON_COLUMNS:
            columns[i] = [None if v is None else json.dumps(v) for v in columns[i]]
    await conn.execute(_UPSERT, *columns)
