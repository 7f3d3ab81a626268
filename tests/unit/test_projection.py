"""Pure projection: event -> audit entry and failure change, and the chain hash."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone, tzinfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from medic.services.projector.chain import GENESIS_HASH, row_hash
from medic.services.projector.projection import STATE_RANK, FailureState, project
from tests.event_histories import PATHS, failure_history

START = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)

EXPECTED = {
    "auto_ok": ["detected", "analyzed", "remediating", "remediating", "remediated"],
    "auto_fail": ["detected", "analyzed", "remediating", "remediating", "remediation_failed"],
    "approved_ok": [
        "detected",
        "analyzed",
        "awaiting_approval",
        "awaiting_approval",
        "remediating",
        "remediating",
        "remediated",
    ],
    "rejected": ["detected", "analyzed", "awaiting_approval", "awaiting_approval", "rejected"],
    "expired": ["detected", "analyzed", "awaiting_approval", "awaiting_approval", "expired"],
    "no_action": ["detected", "analyzed", "no_action"],
}


@pytest.mark.parametrize("path", PATHS)
def test_each_event_maps_to_the_documented_state(path: str) -> None:
    events = failure_history(path, repository="acme/web", run_id=7, start=START)  # type: ignore[arg-type]
    states = [project(e).failure.state.value for e in events]  # type: ignore[arg-type]
    assert states == EXPECTED[path]
    ranks = [STATE_RANK[FailureState(s)] for s in states]
    assert ranks == sorted(ranks), "a causal history never lowers the rank"
    assert project(events[-1]).failure.settles  # type: ignore[arg-type]


def test_audit_entry_carries_the_event() -> None:
    events = failure_history("approved_ok", repository="acme/web", run_id=7, start=START)
    entries = [project(e).audit for e in events]  # type: ignore[arg-type]
    assert [a.action for a in entries] == [e.event_type for e in events]  # type: ignore[attr-defined]
    assert [a.outcome for a in entries][-1] == "succeeded"
    assert all(a.failure_id == events[0].failure_id for a in entries)
    assert entries[4].actor == "alice" and entries[4].outcome == "granted"
    json.dumps([a.details for a in entries])  # plain JSON, ready for jsonb


def test_stage_timestamps_and_fields() -> None:
    events = failure_history("auto_ok", repository="acme/web", run_id=7, start=START)
    changes = [project(e).failure for e in events]  # type: ignore[arg-type]
    stages = [c.stage for c in changes]
    assert stages == ["detected_at", "analyzed_at", "decided_at", "remediation_started_at", "settled_at"]
    assert changes[0].fields["repository"] == "acme/web"
    assert changes[1].fields["method"] in ("rules", "model", "cache")
    assert changes[2].identity["run_id"] == 7


_row = {
    "id": 3,
    "event_id": "e-1",
    "occurred_at": START,
    "actor": "monitor",
    "action": "FailureDetected",
    "outcome": "detected",
    "failure_id": "f-1",
    "repository": "acme/web",
    "details": {"payload": {"b": 1, "a": [1, 2]}},
}


def test_row_hash_is_canonical() -> None:
    reordered = dict(_row, details={"payload": {"a": [1, 2], "b": 1}})
    assert row_hash(GENESIS_HASH, **_row) == row_hash(GENESIS_HASH, **reordered)  # type: ignore[arg-type]


ZONES = [
    timezone(timedelta(hours=5, minutes=30)),
    timezone(-timedelta(hours=8)),
    timezone(-timedelta(hours=11)),
]
"""Fixed offsets (India, US Pacific winter, Niue): no dependence on the machine's tz database."""


@pytest.mark.parametrize("zone", ZONES)
def test_row_hash_is_the_same_for_one_instant_written_in_two_zones(zone: tzinfo) -> None:
    elsewhere = START.astimezone(zone)
    assert elsewhere == START and elsewhere.isoformat() != START.isoformat()  # same instant, other text
    other_zone = dict(_row, occurred_at=elsewhere)
    assert row_hash(GENESIS_HASH, **_row) == row_hash(GENESIS_HASH, **other_zone)  # type: ignore[arg-type]
    same_wall_clock = dict(_row, occurred_at=START.replace(tzinfo=zone))  # another instant
    assert row_hash(GENESIS_HASH, **_row) != row_hash(GENESIS_HASH, **same_wall_clock)  # type: ignore[arg-type]


@given(
    field=st.sampled_from(sorted(_row)),
    value=st.one_of(st.text(max_size=5), st.integers(), st.none()),
)
def test_any_change_changes_the_hash(field: str, value: object) -> None:
    if field == "occurred_at":
        value = START + timedelta(microseconds=1)
    if value == _row[field]:
        return
    changed = dict(_row, **{field: value})
    assert row_hash(GENESIS_HASH, **changed) != row_hash(GENESIS_HASH, **_row)  # type: ignore[arg-type]
    assert row_hash("1" * 64, **_row) != row_hash(GENESIS_HASH, **_row)  # type: ignore[arg-type]
