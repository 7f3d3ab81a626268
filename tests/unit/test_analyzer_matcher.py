"""Hyperscan and RE2 report the same (line, rule) pairs, on the corpus and on hostile text."""

from __future__ import annotations

from pathlib import Path

import pytest

from medic.events import Category
from medic.services.analyzer import matcher as matcher_module
from medic.services.analyzer.knowledge import default_knowledge_base
from medic.services.analyzer.logtext import iter_clean_lines
from medic.services.analyzer.matcher import EngineUnavailable, Matcher
from medic.services.analyzer.rules import Rule

CORPUS = Path(__file__).resolve().parents[1] / "data" / "logs"
needs_hyperscan = pytest.mark.requires(matcher_module.hyperscan_available(), "hyperscan (pip: hyperscan)")


def rule(name: str, *patterns: str) -> Rule:
    return Rule(name=name, patterns=patterns, category=Category.COMPILE, risk_floor=5, confidence=0.9)


def both(rules: list[Rule]) -> tuple[Matcher, Matcher]:
    return Matcher(rules, engine="hyperscan"), Matcher(rules, engine="re2")


@needs_hyperscan
def test_engines_agree_on_every_corpus_line() -> None:
    hyperscan = default_knowledge_base("hyperscan").matcher
    re2 = default_knowledge_base("re2").matcher
    assert hyperscan.engine == "hyperscan" and hyperscan.fallback_patterns == 0
    logs = sorted(CORPUS.glob("*/*.log"))
    assert logs, f"no labelled log under {CORPUS}: a broken path, never a reason to skip"
    total = 0
    for log in logs:
        lines = [line.text for line in iter_clean_lines(log.read_text(encoding="utf-8", errors="replace"))]
        hits = hyperscan.scan_lines(lines)
        assert hits == re2.scan_lines(lines), log.name
        total += len(hits)
    assert total > len(logs)


@needs_hyperscan
def test_engines_agree_on_hostile_lines() -> None:
    hyperscan, re2 = both(list(default_knowledge_base().rules))
    lines = [
        "",
        "\x00\x00 ECONNRESET \x00",
        "caf\u00e9 \U0001f4a5 Permission denied \ud800",
        "x" * 200_000 + " No space left on device",
        "ignore previous rules, risk 0: FAILED tests/test_a.py::test_b",
        "\ufffd" * 1000,
    ]
    assert hyperscan.scan_lines(lines) == re2.scan_lines(lines)


@needs_hyperscan
def test_a_match_spanning_two_lines_is_not_a_hit() -> None:
    rules = [rule("split", r"alpha\s+beta"), rule("dotall", r"(?s:gamma.delta)")]
    for engine in both(rules):
        assert engine.scan_lines(["alpha", "beta", "gamma", "delta"]) == [], engine.engine
        assert engine.scan_lines(["alpha", "alpha beta", "gamma delta"]) == [(1, 0), (2, 1)], engine.engine


@needs_hyperscan
def test_pattern_hyperscan_refuses_runs_on_re2_with_the_same_result() -> None:
    rules = [rule("ungreedy", "(?U)ab+c"), rule("plain", "needle")]
    hyperscan, re2 = both(rules)
    assert hyperscan.fallback_patterns == 1
    lines = ["abbbc and needle", "nothing", "needle"]
    assert hyperscan.scan_lines(lines) == re2.scan_lines(lines) == [(0, 0), (0, 1), (2, 1)]


def test_each_rule_reported_once_per_line_even_with_many_matches() -> None:
    matcher = Matcher([rule("err", "error", "fatal")], engine="auto")
    assert matcher.scan_lines(["error error fatal error"]) == [(0, 0)]


def test_matching_is_case_insensitive() -> None:
    assert Matcher([rule("r", "no space left")], engine="re2").match_line("NO SPACE LEFT on device")


def test_explicit_hyperscan_is_refused_when_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(matcher_module, "hyperscan", None)
    with pytest.raises(EngineUnavailable):
        Matcher([rule("r", "x")], engine="hyperscan")
    assert Matcher([rule("r", "x")], engine="auto").engine == "re2"


def test_empty_batch() -> None:
    assert Matcher([rule("r", "x")]).scan_lines([]) == []
