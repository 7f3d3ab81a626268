"""Event contracts: proto/ is current, published versions are never broken, ids are derived."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from medic.contracts import event_schemas, write_contracts
from medic.events import (
    UPCASTERS,
    EventDecodeError,
    FailureDetected,
    decode_event,
    derive_event_id,
    derive_failure_id,
    utc_now,
)
from medic.services.composition import service_roles

ROOT = Path(__file__).resolve().parents[2]


def test_proto_is_not_stale() -> None:
    stale = write_contracts(ROOT / "proto", service_roles(), check=True)
    assert stale == [], f"proto/ is stale ({stale}); run `make proto` and commit"


def _signatures(schema: dict[str, Any]) -> dict[str, str]:
    """Every property path of a schema with its type signature, following $defs."""
    defs = schema.get("$defs", {})
    found: dict[str, str] = {}

    def shape(node: dict[str, Any]) -> str:
        if "$ref" in node:
            return "ref:" + node["$ref"].rsplit("/", 1)[-1]
        if "anyOf" in node:
            return "anyOf(" + ",".join(sorted(shape(n) for n in node["anyOf"])) + ")"
        if "enum" in node:
            return f"enum{sorted(node['enum'])}"
        if "const" in node:
            return f"const:{node['const']}"
        return str(node.get("type", "any")) + ("[" + shape(node["items"]) + "]" if "items" in node else "")

    def walk(node: dict[str, Any], prefix: str, seen: frozenset[str]) -> None:
        for name, prop in node.get("properties", {}).items():
            found[f"{prefix}{name}"] = shape(prop)
            for ref in _refs(prop):
                if ref in defs and ref not in seen:
                    walk(defs[ref], f"{prefix}{name}.", seen | {ref})
        for req in node.get("required", []):
            found[f"{prefix}{req}!required"] = "required"

    walk(schema, "", frozenset())
    return found


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["$ref"].rsplit("/", 1)[-1]] if "$ref" in node else []
        return own + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


@pytest.mark.parametrize(
    "published", sorted((ROOT / "proto" / "published").glob("*.json")), ids=lambda p: p.stem
)
def test_published_versions_keep_every_field_and_type(published: Path) -> None:
    current = event_schemas().get(published.stem)
    assert current is not None, f"{published.stem} was published and may not disappear"
    old, new = _signatures(json.loads(published.read_text())), _signatures(current)
    removed_or_retyped = {
        path: (sig, new.get(path)) for path, sig in old.items() if sig != "required" and new.get(path) != sig
    }
    assert not removed_or_retyped, f"breaking change to a published event: {removed_or_retyped}"
    newly_required = _newly_required(old, new)
    assert not newly_required, f"old events lack these newly required fields: {newly_required}"


def _newly_required(old: dict[str, str], new: dict[str, str]) -> set[str]:
    """Required now, not before, in a part old events have (a new optional part may require its own)."""

    def parent(required: str) -> str:
        path = required.removesuffix("!required")
        return path.rsplit(".", 1)[0] if "." in path else ""

    return {
        p for p, s in new.items() if s == "required" and p not in old and (parent(p) in old or not parent(p))
    }


def test_a_new_optional_part_may_have_required_fields_but_an_old_part_may_not_gain_one() -> None:
    old = {"payload": "ref:P", "payload.kind": "string", "payload.kind!required": "required"}
    new_part = {**old, "payload.edits": "array", "payload.edits.path!required": "required"}
    assert _newly_required(old, new_part) == set()
    gained = {**old, "payload.cache_key": "string", "payload.cache_key!required": "required"}
    assert _newly_required(old, gained) == {"payload.cache_key!required"}
    top = {**old, "actor!required": "required"}
    assert _newly_required(old, top) == {"actor!required"}


def test_the_compatibility_check_catches_a_retyped_field() -> None:
    schema = event_schemas()["FailureDetected.v1"]
    retyped = json.loads(json.dumps(schema))
    retyped["$defs"]["FailureDetectedPayload"]["properties"]["run_id"] = {"type": "string"}
    assert _signatures(schema) != _signatures(retyped)


def test_failure_id_is_derived_from_the_run_attempt() -> None:
    assert derive_failure_id("Acme/Web", 7, 1) == derive_failure_id("acme/web", 7, 1)
    assert derive_failure_id("acme/web", 7, 1) != derive_failure_id("acme/web", 7, 2)
    assert derive_failure_id("acme/web", 7, 1) != derive_failure_id("acme/api", 7, 1)


def test_derived_event_ids_repeat_for_the_same_cause_only() -> None:
    at = utc_now()
    assert derive_event_id("cause", "GateDecided", at) == derive_event_id("cause", "GateDecided", at)
    assert derive_event_id("cause", "GateDecided", at) != derive_event_id("other", "GateDecided", at)


def test_an_upcaster_lifts_an_old_version_before_validation() -> None:
    old = {
        "event_type": "FailureDetected",
        "schema_version": 0,
        "failure_id": "f",
        "actor": "monitor",
        "payload": {
            "repo": "acme/web",
            "run_id": 1,
            "run_attempt": 1,
            "workflow_name": "CI",
            "detected_at": "2026-11-25T10:00:00Z",
        },
    }

    def upcast_failure_detected_v0_v1(raw: dict[str, Any]) -> dict[str, Any]:
        payload = dict(raw["payload"])
        payload["repository"] = payload.pop("repo")
        return {**raw, "schema_version": 1, "payload": payload}

    UPCASTERS[("FailureDetected", 0)] = upcast_failure_detected_v0_v1
    try:
        event = decode_event(json.dumps(old))
    finally:
        del UPCASTERS[("FailureDetected", 0)]
    assert isinstance(event, FailureDetected)
    assert event.payload.repository == "acme/web"


def test_readers_ignore_unknown_fields() -> None:
    raw = {
        "event_type": "ApprovalExpired",
        "schema_version": 1,
        "failure_id": "f",
        "actor": "approval",
        "added_later": {"anything": 1},
        "payload": {"approval_id": "a", "expired_at": "2026-11-25T10:00:00Z", "also_new": True},
    }
    assert decode_event(json.dumps(raw)).event_type == "ApprovalExpired"


def test_an_answer_names_its_cause_and_repeats_its_id_for_the_same_cause() -> None:
    from medic.events import ApprovalExpired, ApprovalExpiredPayload

    cause = FailureDetected.model_validate_json(
        '{"failure_id": "f", "actor": "monitor", "payload": {"repository": "acme/web", "run_id": 1,'
        ' "run_attempt": 1, "workflow_name": "CI", "detected_at": "2026-11-25T10:00:00Z"}}'
    )
    payload = ApprovalExpiredPayload(approval_id="a", expired_at=utc_now())
    first = ApprovalExpired.answering(cause, actor="approval", payload=payload)
    again = ApprovalExpired.answering(cause, actor="approval", payload=payload)
    assert first.event_id == again.event_id
    assert (first.failure_id, first.causation_id) == ("f", cause.event_id)


def test_an_event_without_its_version_reads_as_the_current_version() -> None:
    """Every published event names its version; a copy without it is read as version 1, the
    same event (a faster decoder must keep both readings equal)."""
    from datetime import UTC, datetime

    from medic.events import encode_event
    from tests.event_histories import mixed_histories

    events = mixed_histories(60, start=datetime(2026, 1, 1, tzinfo=UTC))
    assert {e.event_type for e in events} >= {"FailureDetected", "GateDecided", "RemediationFinished"}
    for event in events:
        wire = encode_event(event)
        assert b'"schema_version"' in wire
        unversioned = {k: v for k, v in json.loads(wire).items() if k != "schema_version"}
        assert decode_event(wire) == event == decode_event(json.dumps(unversioned))


@pytest.mark.parametrize("version", ["1", True, 1.0, 0, 2, None])
def test_a_version_the_reader_does_not_have_is_never_read_as_current(version: object) -> None:
    """pydantic would take ``true`` and ``1.0`` for ``Literal[1]`` in JSON mode; the reader does not."""
    raw = {
        "event_type": "ApprovalExpired",
        "schema_version": version,
        "failure_id": "f",
        "actor": "approval",
        "payload": {"approval_id": "a", "expired_at": "2026-11-25T10:00:00Z"},
    }
    with pytest.raises(EventDecodeError):
        decode_event(json.dumps(raw).encode())
