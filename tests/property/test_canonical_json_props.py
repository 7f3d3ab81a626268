"""The audit chain's canonical JSON, encoded the fast way, is byte for byte the reference.

The reference is ``json.dumps(..., sort_keys=True, separators=(",", ":"), ensure_ascii=False)``
(what :func:`~medic.services.projector.chain.row_hash` and ``medic audit verify`` compute);
a single differing byte would break every hash after it. Strategies reach what the encoder
treats apart: escapes and control characters, non-ASCII and lone surrogates, huge ints,
floats (NaN, infinities, exponents), nesting, key order and str subclasses.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from medic.services.projector.chain import canonical_json, content_head, linked_hash, row_hash


def reference(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


class Kind(StrEnum):
    A = 'a\n\u2028"b'


texts = st.one_of(
    st.text(),
    st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x7F)),
    st.text(alphabet=st.characters(codec=None, min_codepoint=0xD7F0, max_codepoint=0xE010)),
    st.just(Kind.A),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=True, allow_infinity=True),
    texts,
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=6),
        st.tuples(inner, inner),
        st.dictionaries(texts, inner, max_size=6),
    ),
    max_leaves=40,
)


@settings(max_examples=1500)
@given(json_values)
def test_canonical_json_is_the_reference(value: Any) -> None:
    assert canonical_json(value) == reference(value)


@settings(max_examples=300)
@given(st.dictionaries(st.one_of(st.integers(), st.floats(), st.booleans(), st.none()), scalars, min_size=1))
def test_keys_that_are_not_strings_fail_or_match_as_the_reference(value: dict[Any, Any]) -> None:
    assert _outcome(lambda: canonical_json(value)) == _outcome(lambda: reference(value))


optional_texts = st.one_of(st.none(), texts)


@settings(max_examples=800)
@given(
    texts,
    st.datetimes(timezones=st.just(UTC)),
    texts,
    texts,
    optional_texts,
    texts,
    optional_texts,
    json_values,
    st.integers(min_value=1, max_value=2**62),
)
def test_the_pre_encoded_row_hashes_as_the_reference(
    event_id: str,
    occurred_at: datetime,
    actor: str,
    action: str,
    outcome: str | None,
    failure_id: str,
    repository: str | None,
    details: Any,
    row_id: int,
) -> None:
    fields = {
        "event_id": event_id,
        "occurred_at": occurred_at,
        "actor": actor,
        "action": action,
        "outcome": outcome,
        "failure_id": failure_id,
        "repository": repository,
    }
    head = content_head(**fields)
    at = occurred_at.isoformat(timespec="microseconds")
    content = [row_id, event_id, at, actor, action, outcome, failure_id, repository, details]
    assert f"[{row_id},{head},{reference(details)}]" == reference(content)
    assert _outcome(lambda: linked_hash("f" * 64, row_id, head, canonical_json(details))) == _outcome(
        lambda: row_hash("f" * 64, id=row_id, details=details, **fields)  # type: ignore[arg-type]
    )


def _outcome(compute: Callable[[], str]) -> str | type[BaseException]:
    """The hash, or the kind of error (a lone surrogate cannot be hashed as UTF-8 either way)."""
    try:
        return compute()
    except Exception as exc:
        return type(exc)
