"""The parsed-rules cache: a second process reads the rules back instead of parsing the YAML.

Its entries are inputs like the compiled databases beside them: keyed by the rule file's text
and the checking code, so an edited file is parsed again; and a damaged, foreign or well-signed
but wrong entry is ignored and rewritten, never trusted, the rules never different.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from medic.services.analyzer import rules as rules_module
from medic.services.analyzer.compiled_rules import CompiledRulesCache, ParsedRulesCache
from medic.services.analyzer.knowledge import KnowledgeBase
from medic.services.analyzer.rules import (
    RuleError,
    default_rules,
    load_knowledge_rules,
    load_rules_text,
    parsed_rules_key,
)

TEXT = """
rules:
  - name: net-reset
    patterns: ['\\bECONNRESET\\b', 'connection reset by peer']
    category: infrastructure
    risk_floor: 1
    confidence: 0.9
    retryable: true
    action: {kind: rerun_failed_jobs}
    priority: 80
  - name: cc-error
    patterns: ['^\\S+:\\d+:\\d+: error:']
    category: compile
    risk_floor: 5
    confidence: 0.8
    description: a C compiler's error line
"""


def only_entry(directory: Path) -> Path:
    files = sorted(directory.glob("rules-*.rules.json"))
    assert len(files) == 1, files
    return files[0]


def _refuse(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("the cached rules were parsed or checked again")


def test_the_second_load_reads_the_parsed_rules_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = ParsedRulesCache(tmp_path)
    expected = load_rules_text(TEXT, source="t")
    assert load_rules_text(TEXT, source="t", cache=cache) == expected
    only_entry(tmp_path)
    monkeypatch.setattr(yaml, "load", _refuse)
    monkeypatch.setattr(rules_module, "check_pattern", _refuse)
    again = load_rules_text(TEXT, source="t", cache=cache)
    assert again == expected
    assert [rule.model_dump() for rule in again] == [rule.model_dump() for rule in expected]


def test_an_edited_file_is_parsed_again(tmp_path: Path) -> None:
    cache = ParsedRulesCache(tmp_path)
    load_rules_text(TEXT, source="t", cache=cache)
    edited = TEXT.replace("confidence: 0.8", "confidence: 0.7")
    assert parsed_rules_key(edited) != parsed_rules_key(TEXT)
    rules = load_rules_text(edited, source="t", cache=cache)
    assert rules[1].confidence == 0.7
    assert len(list(tmp_path.glob("rules-*.rules.json"))) == 2


def test_the_key_covers_the_checking_code(monkeypatch: pytest.MonkeyPatch) -> None:
    """A new rules module (another model, another pattern check) or RE2 build gives new keys."""
    before = parsed_rules_key(TEXT)
    monkeypatch.setattr(rules_module, "_checker_stamp", lambda: b"another build of the checks")
    assert parsed_rules_key(TEXT) != before


def test_without_a_readable_source_nothing_is_cached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Where the checking code cannot be read (a zip import), no key could follow its changes."""
    monkeypatch.setattr(rules_module, "_checker_stamp", lambda: None)
    cache = ParsedRulesCache(tmp_path)
    assert load_rules_text(TEXT, source="t", cache=cache) == load_rules_text(TEXT, source="t")
    assert list(tmp_path.iterdir()) == []


def test_a_bad_file_is_refused_every_time_and_never_stored(tmp_path: Path) -> None:
    cache = ParsedRulesCache(tmp_path)
    bad = TEXT.replace("'connection reset by peer'", "'x*'")
    for _ in range(2):
        with pytest.raises(RuleError, match="net-reset"):
            load_rules_text(bad, source="org.yaml", cache=cache)
    assert list(tmp_path.iterdir()) == []


def _flip_last_byte(data: bytes) -> bytes:
    return data[:-1] + bytes([data[-1] ^ 0xFF])


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda data: b"", id="empty"),
        pytest.param(lambda data: data[: len(data) // 2], id="truncated"),
        pytest.param(_flip_last_byte, id="flipped"),
        pytest.param(lambda data: b"\x00" * len(data), id="zeroed"),
        pytest.param(lambda data: data + b"trailing", id="appended"),
    ],
)
def test_a_damaged_entry_is_ignored_and_rewritten(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, damage: Any
) -> None:
    cache = ParsedRulesCache(tmp_path)
    expected = load_rules_text(TEXT, source="t", cache=cache)
    entry = only_entry(tmp_path)
    good = entry.read_bytes()
    entry.write_bytes(damage(good))
    assert load_rules_text(TEXT, source="t", cache=cache) == expected
    assert entry.read_bytes() == good
    monkeypatch.setattr(yaml, "load", _refuse)
    assert load_rules_text(TEXT, source="t", cache=cache) == expected


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(b"not json", id="not-json"),
        pytest.param(b'{"rules": []}', id="not-a-list"),
        pytest.param(b'[{"name": "x"}]', id="missing-fields"),
        pytest.param(b"[1, 2]", id="not-rules"),
        pytest.param(b"[" * 100_000, id="nested-too-deep"),
        pytest.param(
            b'[{"name": "a", "patterns": ["boom"], "category": "no-such-category", "risk_floor": 1,'
            b' "confidence": 0.5}]',
            id="unknown-category",
        ),
        pytest.param(
            b'[{"name": "a", "patterns": ["boom"], "category": "compile", "risk_floor": 1,'
            b' "confidence": 0.5, "shell": "rm -rf /"}]',
            id="unknown-field",
        ),
        pytest.param(
            b'[{"name": "a", "patterns": ["boom"], "category": "compile", "risk_floor": 1,'
            b' "confidence": 0.5},'
            b' {"name": "a", "patterns": ["bang"], "category": "lint", "risk_floor": 1, "confidence": 0.5}]',
            id="name-twice",
        ),
    ],
)
def test_a_well_signed_but_wrong_entry_is_ignored(tmp_path: Path, payload: bytes) -> None:
    cache = ParsedRulesCache(tmp_path)
    expected = load_rules_text(TEXT, source="t")
    key = parsed_rules_key(TEXT)
    assert key is not None
    assert cache.store(key, payload)
    assert load_rules_text(TEXT, source="t", cache=cache) == expected
    assert cache.load(key) != payload


def test_a_compiled_database_is_not_read_as_parsed_rules(tmp_path: Path) -> None:
    """The two kinds of entry share a directory and a key space, never a file."""
    key = parsed_rules_key(TEXT)
    assert key is not None
    assert CompiledRulesCache(tmp_path).store(key, b"[]")
    assert ParsedRulesCache(tmp_path).load(key) is None
    assert load_rules_text(TEXT, source="t", cache=ParsedRulesCache(tmp_path)) == load_rules_text(
        TEXT, source="t"
    )


def test_an_unwritable_cache_only_costs_the_parse(tmp_path: Path) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("not a directory")
    cache = ParsedRulesCache(blocked / "cache")
    assert load_rules_text(TEXT, source="t", cache=cache) == load_rules_text(TEXT, source="t")


def test_knowledge_rules_from_the_cache_are_the_files_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    org = tmp_path / "org.yaml"
    org.write_text(TEXT)
    cache = ParsedRulesCache(tmp_path / "cache")
    expected = load_knowledge_rules(organisation=org)
    assert load_knowledge_rules(organisation=org, cache=cache) == expected
    assert len(list((tmp_path / "cache").glob("rules-*.rules.json"))) == 2  # shipped file and org's
    monkeypatch.setattr(yaml, "load", _refuse)
    assert load_knowledge_rules(organisation=org, cache=cache) == expected
    base = KnowledgeBase.load(organisation=org, engine="re2", cache=CompiledRulesCache(tmp_path / "cache"))
    assert base.rules == expected


def test_the_shipped_rules_read_back_equal(tmp_path: Path) -> None:
    cache = ParsedRulesCache(tmp_path)
    assert default_rules(cache=cache) == default_rules(cache=cache) == default_rules()


@given(st.binary(max_size=512))
def test_any_entry_reads_as_rules_or_none(payload: bytes) -> None:
    decoded = rules_module._decode_rules(payload)
    assert decoded is None or all(isinstance(rule, rules_module.Rule) for rule in decoded)
