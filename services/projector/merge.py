"""The failures upsert of :mod:`.store`, in Python: a batch's changes folded into final rows.

A batch may change one failure several times, and ``INSERT ... ON CONFLICT DO UPDATE``
cannot touch a row twice in one statement. So the set-based path reads the rows it will
change, folds every change into them here in stream order, and writes each row once.
:func:`fold` must give exactly what the row-by-row SQL upsert (``store._upsert_sql``) gives
applied one change at a time; the tests run both on the same histories and compare.

The one thing Python cannot decide alone is the tie-break on ``state_event_id``, which
PostgreSQL compares under the database's collation: the caller passes the collation order
of every event id involved in a tie (see :func:`tied_event_ids`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from medic.services.projector.projection import FailureChange

FAILURE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("failure_id", "text"),
    ("repository", "text"),
    ("run_id", "bigint"),
    ("run_attempt", "integer"),
    ("workflow_name", "text"),
    ("branch", "text"),
    ("head_sha", "text"),
    ("html_url", "text"),
    ("state", "text"),
    ("state_rank", "smallint"),
    ("state_at", "timestamptz"),
    ("state_event_id", "text"),
    ("category", "text"),
    ("risk", "smallint"),
    ("confidence", "double precision"),
    ("method", "text"),
    ("fingerprint", "text"),
    ("summary", "text"),
    ("proposed_action", "text"),
    ("gate_outcome", "text"),
    ("gate_reasons", "jsonb"),
    ("gate_risk", "smallint"),
    ("risk_threshold", "smallint"),
    ("approval_id", "text"),
    ("approval_outcome", "text"),
    ("approver", "text"),
    ("approval_expires_at", "timestamptz"),
    ("remediation_action", "text"),
    ("remediation_outcome", "text"),
    ("remediation_detail", "text"),
    ("verified_run_attempt", "integer"),
    ("first_seen_at", "timestamptz"),
    ("last_event_at", "timestamptz"),
    ("event_count", "integer"),
    ("detected_at", "timestamptz"),
    ("analyzed_at", "timestamptz"),
    ("decided_at", "timestamptz"),
    ("approval_requested_at", "timestamptz"),
    ("approval_decided_at", "timestamptz"),
    ("remediation_started_at", "timestamptz"),
    ("settled_at", "timestamptz"),
)
"""The failures table as the migrations define it (a test compares it with the database)."""

FAILURE_COLUMN_NAMES: tuple[str, ...] = tuple(name for name, _ in FAILURE_COLUMNS)
_COLUMN_TYPES = dict(FAILURE_COLUMNS)
_INT_RANGES = {
    "smallint": (-(2**15), 2**15 - 1),
    "integer": (-(2**31), 2**31 - 1),
    "bigint": (-(2**63), 2**63 - 1),
}
_BOUNDS: dict[str, tuple[int, int] | None] = {name: _INT_RANGES.get(kind) for name, kind in FAILURE_COLUMNS}

Row = dict[str, Any]


def check_storable(change: FailureChange) -> None:
    """Raise ValueError for a value its column cannot hold.

    Row by row, such a change fails its own statement and the event is recorded as
    unapplied. Folded, a later change of the same failure could overwrite the value before
    PostgreSQL ever sees it, and the event would pass: so it is refused here, before the
    fold, and the batch falls back to the row-by-row path, which records it as it always
    did. (Text and JSON values need no check: the audit row of the same event carries them
    all and fails the batch the same way.)
    """
    for values in (change.fields, change.identity):
        for name, value in values.items():
            bounds = _BOUNDS[name]  # KeyError (a permanent error) for a column the table lacks
            if bounds is not None and isinstance(value, int) and not bounds[0] <= value <= bounds[1]:
                raise ValueError(f"{name} = {value} is out of range for {_COLUMN_TYPES[name]}")


def tied_event_ids(existing: Mapping[str, Row], changes: Iterable[FailureChange]) -> set[str]:
    """Event ids whose order decides a state: same failure, same rank, same time."""
    seen: dict[tuple[str, int, datetime], set[str]] = {}
    for failure_id, row in existing.items():
        seen.setdefault((failure_id, row["state_rank"], row["state_at"]), set()).add(row["state_event_id"])
    for c in changes:
        seen.setdefault((c.failure_id, c.rank, c.occurred_at), set()).add(c.event_id)
    return {event_id for ids in seen.values() if len(ids) > 1 for event_id in ids}


def fold(row: Row | None, c: FailureChange, order: Mapping[str, int]) -> Row:
    """The row after ``c``: what ``store._upsert_sql`` makes of it, updated in place.

    ``order`` ranks event ids by the database's collation; ids missing from it are never tied.
    """
    at = c.occurred_at
    settle = c.settles and c.stage != "settled_at"
    if row is None:
        row = dict.fromkeys(FAILURE_COLUMN_NAMES)
        row.update(
            failure_id=c.failure_id,
            state=c.state.value,
            state_rank=c.rank,
            state_at=at,
            state_event_id=c.event_id,
            first_seen_at=at,
            last_event_at=at,
            event_count=1,
        )
        row[c.stage] = c.stage_at
        row.update(c.fields)
        row.update(c.identity)
        if settle:
            row["settled_at"] = at
        return row
    # every right-hand side reads the row as it was, like SQL's SET
    old_stage = row[c.stage]
    current = (row["state_rank"], row["state_at"])
    mine = (c.rank, at)
    newer = mine > current or (
        mine == current and order.get(c.event_id, 0) > order.get(row["state_event_id"], 0)
    )
    latest = old_stage is None or (c.stage_at is not None and c.stage_at >= old_stage)
    updates: Row = {
        "first_seen_at": _least(row["first_seen_at"], at),
        "last_event_at": _greatest(row["last_event_at"], at),
        "event_count": row["event_count"] + 1,
        c.stage: _greatest(old_stage, c.stage_at),
    }
    if newer:
        updates.update(state=c.state.value, state_rank=c.rank, state_at=at, state_event_id=c.event_id)
    if latest:
        updates.update(c.fields)
    for name, value in c.identity.items():
        if name not in c.fields:
            updates[name] = row[name] if row[name] is not None else value
    if settle:
        updates["settled_at"] = _greatest(row["settled_at"], at)
    row.update(updates)
    return row


def _greatest(a: Any, b: Any) -> Any:
    """SQL GREATEST: NULLs are ignored."""
    if a is None:
        return b
    if b is None:
        return a
    return b if b > a else a


def _least(a: Any, b: Any) -> Any:
    if a is None:
        return b
    if b is None:
        return a
    return b if b < a else a
