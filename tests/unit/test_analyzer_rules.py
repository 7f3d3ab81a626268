"""Loading the knowledge base: refuse what is unsafe, naming the rule; merge by name."""

from __future__ import annotations

from pathlib import Path

import pytest

from medic.events import ActionKind, Category
from medic.services.analyzer.knowledge import KnowledgeBase
from medic.services.analyzer.rules import (
    RuleError,
    default_rules,
    load_knowledge_rules,
    load_rules_text,
    merge_rules,
)

VALID = """
rules:
  - name: {name}
    patterns: [{pattern}]
    category: {category}
    risk_floor: {risk}
    confidence: 0.9
"""


def rules_yaml(
    name: str = "my-rule", pattern: str = "'boom'", category: str = "compile", risk: int = 5
) -> str:
    return VALID.format(name=name, pattern=pattern, category=category, risk=risk)


def test_default_knowledge_base_is_valid_and_covers_every_category() -> None:
    rules = default_rules()
    assert len({rule.name for rule in rules}) == len(rules)
    covered = {rule.category for rule in rules}
    assert covered >= set(Category) - {Category.UNKNOWN}


def test_default_risk_floors_follow_the_policy() -> None:
    for rule in default_rules():
        if rule.retryable:
            assert rule.risk_floor <= 3, rule.name
        if rule.category in (Category.PERMISSION, Category.CONFIG):
            assert rule.risk_floor >= 6, rule.name
        if rule.action.kind is ActionKind.OPEN_FIX_PR:
            assert rule.category is Category.LINT, rule.name


@pytest.mark.parametrize(
    ("pattern", "why"),
    [
        ("'(?=lookahead)x'", "unsupported pattern"),
        ("'(a)\\1'", "unsupported pattern"),
        ("'a|'", "matches the empty line"),
        ("'x*'", "matches the empty line"),
        ("'a.{0,500}b'", "repetition"),
        ("'(unclosed'", "unsupported pattern"),
    ],
)
def test_unsafe_pattern_is_refused_naming_the_rule(pattern: str, why: str) -> None:
    with pytest.raises(RuleError) as refused:
        load_rules_text(rules_yaml(name="evil-rule", pattern=pattern), source="repo.yaml")
    message = str(refused.value)
    assert "repo.yaml" in message and "'evil-rule'" in message and why in message


@pytest.mark.parametrize(
    ("text", "why"),
    [
        (rules_yaml(category="bogus"), "category"),
        (rules_yaml(risk=11), "risk_floor"),
        (
            "rules: [{name: no-patterns, patterns: [], category: lint, risk_floor: 1, confidence: 1}]",
            "patterns",
        ),
        (
            "rules: [{name: x, patterns: [a], category: lint, risk_floor: 1, confidence: 1, shell: rm}]",
            "shell",
        ),
        ("rules:\n  - name: x\n    patterns: [a\n", "not valid YAML"),
        ("- just a list", "'rules' list"),
        (rules_yaml() + rules_yaml().replace("rules:\n", ""), "defined twice"),
    ],
)
def test_invalid_rule_files_are_refused(text: str, why: str) -> None:
    with pytest.raises(RuleError, match=why):
        load_rules_text(text, source="org.yaml")


def test_later_layers_override_by_name_and_can_disable() -> None:
    base = load_rules_text(rules_yaml(name="a") + rules_yaml(name="b").replace("rules:\n", ""), source="d")
    org = load_rules_text(rules_yaml(name="a", category="lint", risk=4), source="org")
    repo = load_rules_text(
        "rules: [{name: b, patterns: [b], category: lint, risk_floor: 1, confidence: 1, enabled: false}]",
        source="repo",
    )
    merged = merge_rules(base, org, repo)
    assert [(r.name, r.category) for r in merged] == [("a", Category.LINT)]


def test_organisation_then_repository_files_override_defaults(tmp_path: Path) -> None:
    org = tmp_path / "org.yaml"
    repo = tmp_path / "repo.yaml"
    org.write_text(
        rules_yaml(name="network-transient", pattern="'ECONNRESET'", category="infrastructure", risk=4)
    )
    repo.write_text(rules_yaml(name="our-own", pattern="'our build broke'"))
    rules = load_knowledge_rules(organisation=org, repository=repo)
    by_name = {rule.name: rule for rule in rules}
    assert by_name["network-transient"].risk_floor == 4
    assert by_name["network-transient"].patterns == ("ECONNRESET",)
    assert rules[-1].name == "our-own"
    knowledge_base = KnowledgeBase.load(organisation=org, repository=repo, engine="re2")
    assert knowledge_base.matcher.match_line("our build broke")[0].name == "our-own"


def test_unreadable_rule_file_is_a_rule_error(tmp_path: Path) -> None:
    with pytest.raises(RuleError, match="cannot read"):
        load_knowledge_rules(repository=tmp_path / "missing.yaml")
