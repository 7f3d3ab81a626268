"""medic.boundary: what strangers write is made valid for every consumer."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from medic.boundary import (
    bounded_text,
    clean_json,
    clean_text,
    has_control_characters,
    has_unstorable,
    json_too_deep,
)
from medic.events import FailedJob


def test_nul_and_lone_surrogates_are_replaced() -> None:
    assert clean_text("a\x00b\ud800c\udfff") == "a\ufffdb\ufffdc\ufffd"
    assert clean_text("plain ✓ text") == "plain ✓ text"


@given(st.text())
def test_cleaned_text_always_encodes_and_has_no_nul(value: str) -> None:
    cleaned = clean_text(value)
    cleaned.encode("utf-8")
    assert "\x00" not in cleaned


@given(st.text(), st.integers(min_value=80, max_value=5000))
def test_bounded_text_fits_its_bound(value: str, limit: int) -> None:
    assert len(bounded_text(value, limit).encode()) <= limit


def test_bounded_text_says_it_was_cut() -> None:
    cut = bounded_text("x" * 10_000, 1000)
    assert "truncated by ci-medic: 10000 bytes" in cut and cut.startswith("xxx")


def test_events_clean_their_text_whoever_builds_them() -> None:
    job = FailedJob(job_id=1, name="b\x00d", log_tail="\ud83d lone")
    assert job.name == "b\ufffdd" and job.log_tail == "\ufffd lone"
    job.model_dump_json()  # would raise on a lone surrogate


def test_depth_scan_ignores_brackets_in_strings() -> None:
    assert json_too_deep(b"[" * 65 + b"]" * 65)
    assert not json_too_deep(b'["' + b"[" * 1000 + b'"]')
    assert not json_too_deep(b'{"a": "\\"[[[["}')


def _depth_by_bytes(body: bytes, max_depth: int = 64) -> bool:
    """The reference: the plain byte-by-byte scan the fast check replaced."""
    depth, in_string, escaped = 0, False, False
    for byte in body:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:
                escaped = True
            elif byte == 0x22:
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):
            depth += 1
            if depth > max_depth:
                return True
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return False


_JSON_BYTES = [b"[", b"]", b"{", b"}", b'"', b"\\", b"a", b":", b",", b"\n"]


@given(st.lists(st.sampled_from(_JSON_BYTES), max_size=300))
def test_depth_check_agrees_with_the_byte_scan_on_any_bytes(parts: list[bytes]) -> None:
    body = b"".join(parts)
    for limit in (0, 1, 3, 64):
        assert json_too_deep(body, limit) == _depth_by_bytes(body, limit), (body, limit)


def test_depth_check_on_real_json_nesting() -> None:
    for depth in (63, 64, 65, 200):
        value: object = "x[{"
        for level in range(depth):
            value = [value] if level % 2 else {"k]": value}
        assert json_too_deep(json.dumps(value).encode()) == (depth > 64), depth
    assert json_too_deep(b'"unterminated [[[[' + b"[" * 100) is False
    assert json_too_deep(b'["\\\\"' + b"[" * 100) is True  # an escaped backslash ends before the quote


def test_clean_json_and_unstorable() -> None:
    raw = json.loads('{"k\\u0000": ["\\ud800", {"x": "ok"}]}')
    assert has_unstorable(raw)
    cleaned = clean_json(raw)
    assert not has_unstorable(cleaned)
    assert cleaned == {"k\ufffd": ["\ufffd", {"x": "ok"}]}


def test_control_characters() -> None:
    assert has_control_characters("alice\n")
    assert has_control_characters("a\u202eb")  # a bidi override makes "alice" read as another name
    assert has_control_characters("\x1b[31m")
    assert not has_control_characters("Zoë O'Brien")


def test_the_log_tail_keeps_its_published_wire_name() -> None:
    """In code the field says what it is (a tail); on the wire it stays ``log_excerpt``, so a service of
    the previous version reads the log of a newer monitor's event and the other way round."""
    job = FailedJob(job_id=1, name="build", log_tail="line\n")
    wire = json.loads(job.model_dump_json())
    assert wire["log_excerpt"] == "line\n" and "log_tail" not in wire
    assert FailedJob.model_validate(wire).log_tail == "line\n"
