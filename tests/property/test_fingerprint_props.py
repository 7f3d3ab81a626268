"""Fingerprints are stable across the incidental and sensitive to the essential."""

from __future__ import annotations

from hypothesis import assume, given, settings

from medic.services.analyzer.fingerprint import fingerprint, normalise_line
from medic.services.analyzer.logtext import clean_line
from tests.property.strategies import (
    decorated_lines,
    error_messages,
    incidental_values,
    render_failure,
)


@settings(max_examples=200)
@given(message=error_messages, first=incidental_values(), second=incidental_values())
def test_same_failure_with_other_incidentals_has_same_fingerprint(
    message: str, first: dict[str, str], second: dict[str, str]
) -> None:
    assert fingerprint(render_failure(message, first), salt="rule") == fingerprint(
        render_failure(message, second), salt="rule"
    )


@settings(max_examples=200)
@given(one=error_messages, other=error_messages, values=incidental_values())
def test_different_error_text_has_different_fingerprint(one: str, other: str, values: dict[str, str]) -> None:
    assume(one != other)
    assert fingerprint(render_failure(one, values)) != fingerprint(render_failure(other, values))


@given(message=error_messages, values=incidental_values())
def test_the_cause_salts_the_fingerprint(message: str, values: dict[str, str]) -> None:
    lines = render_failure(message, values)
    assert fingerprint(lines, salt="network-transient") != fingerprint(lines, salt="pytest-failure")


@given(line=decorated_lines)
def test_normalisation_is_idempotent_and_total(line: str) -> None:
    once = normalise_line(line)
    assert normalise_line(once) == once


@given(line=decorated_lines)
def test_cleaning_never_leaves_escape_codes_or_grows_unbounded(line: str) -> None:
    text, _ = clean_line(line)
    assert "\x1b" not in text
    assert len(text) <= 2000
