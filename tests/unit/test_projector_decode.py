"""The projector's one-pass decoder must decide exactly as ``decode_event`` does.

It validates ci-medic's own bytes straight from JSON; anything it refuses goes through
``decode_event``. So the only way to diverge is to *accept* what ``decode_event`` refuses,
or to read it differently: these properties perturb real events field by field (versions
given as ``true`` or ``1.0``, escaped keys, duplicates, any JSON value) and compare.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from medic.events import EventDecodeError, decode_event, encode_event
from medic.services.projector.unapplied import Unreadable, decode_or_unreadable
from tests.event_histories import PATHS, mixed_histories
from tests.property.strategies import json_values

EVENTS = [
    json.loads(encode_event(e)) for e in mixed_histories(len(PATHS), start=datetime(2025, 3, 1, tzinfo=UTC))
]


def reference(data: bytes) -> Any:
    try:
        return decode_event(data)
    except EventDecodeError as exc:
        return Unreadable(data, str(exc))
    except RecursionError:
        return Unreadable(data, "nested too deeply to parse")


@st.composite
def perturbed(draw: st.DrawFn) -> bytes:
    raw: dict[str, Any] = json.loads(json.dumps(draw(st.sampled_from(EVENTS))))
    target = draw(st.sampled_from([raw, raw["payload"]]))
    key = draw(st.sampled_from([*target, "schema_version", "extra"]))
    how = draw(st.sampled_from(["set", "drop", "duplicate", "escape"]))
    value = draw(st.sampled_from([True, False, 1.0, "1", 2, 0, -1, None]) | json_values)
    if how == "set":
        target[key] = value
    elif how == "drop" and not (target is raw and key in ("event_id", "occurred_at")):  # they default
        target.pop(key, None)  # to a new id and the time of decoding: two decodes never agree
    text = json.dumps(raw, separators=(",", ":"), ensure_ascii=draw(st.booleans()))
    if how == "duplicate":  # the same key again at the end: JSON readers keep the last one
        text = text[:-1] + f',"{key}":{json.dumps(value)}}}'
    elif how == "escape":  # the key spelled with an escape: the same key to a JSON reader
        text = text[:-1] + f',"{key[:1]}\\u{ord(key[1:2] or "x"):04x}{key[2:]}":{json.dumps(value)}}}'
    return text.encode()


@given(perturbed())
def test_one_pass_decoding_decides_like_decode_event(data: bytes) -> None:
    assert decode_or_unreadable(data) == reference(data)


def test_events_as_written_take_the_one_pass_and_equal_the_reference() -> None:
    for raw in EVENTS:
        data = json.dumps(raw, separators=(",", ":"), ensure_ascii=False).encode()
        assert decode_or_unreadable(data) == reference(data)


def test_a_version_pydantic_alone_would_accept_is_still_unreadable() -> None:
    raw = dict(EVENTS[0])
    for version in ("true", "1.0"):
        text = json.dumps(raw, separators=(",", ":")).replace(
            '"schema_version":1', f'"schema_version":{version}'
        )
        decoded = decode_or_unreadable(text.encode())
        assert isinstance(decoded, Unreadable), version
        assert "schema_version" in decoded.reason
