"""Rules layered per organisation and per repository, chosen by the failure's repository."""

from __future__ import annotations

from pathlib import Path

import pytest

from medic.config import RepositoryConfig, load_settings
from medic.services.analyzer.classify import analyze_log
from medic.services.analyzer.knowledge import knowledge_for_settings
from medic.services.analyzer.rules import RuleError

LOG = "2026-11-25T10:00:00.0000000Z ACME-LICENSE-SERVER unreachable (E4711)\n"

ORG_RULES = """
rules:
  - name: acme-license-server
    patterns: ['ACME-LICENSE-SERVER unreachable']
    category: infrastructure
    risk_floor: 2
    confidence: 0.9
    retryable: true
    action: {kind: rerun_failed_jobs}
    priority: 85
"""

REPO_RULES = """
rules:
  - name: acme-license-server
    patterns: ['ACME-LICENSE-SERVER unreachable']
    category: config
    risk_floor: 7
    confidence: 0.9
    action: {kind: none}
    priority: 85
"""


def test_organisation_and_repository_rules_apply_to_their_repositories(tmp_path: Path) -> None:
    org, repo = tmp_path / "org.yaml", tmp_path / "repo.yaml"
    org.write_text(ORG_RULES)
    repo.write_text(REPO_RULES)
    settings = load_settings(
        analyzer_engine="re2",
        rules_file=org,
        repository_configs={"acme/legacy": RepositoryConfig(rules_file=repo)},
    )
    knowledge_for = knowledge_for_settings(settings)

    shipped_only = analyze_log(
        LOG, knowledge_base=knowledge_for_settings(load_settings(analyzer_engine="re2"))("acme/web")
    )
    org_wide = analyze_log(LOG, knowledge_base=knowledge_for("acme/web"))
    legacy = analyze_log(LOG, knowledge_base=knowledge_for("ACME/Legacy"))

    assert shipped_only.category.value == "unknown"
    assert (org_wide.category.value, org_wide.proposed_action.kind.value) == (
        "infrastructure",
        "rerun_failed_jobs",
    )
    assert (legacy.category.value, legacy.risk) == ("config", 7)


def test_a_bad_organisation_rule_file_stops_start_up_naming_the_rule(tmp_path: Path) -> None:
    bad = tmp_path / "org.yaml"
    bad.write_text(ORG_RULES.replace("'ACME-LICENSE-SERVER unreachable'", "'(a+)+\\1'"))
    with pytest.raises(RuleError, match="acme-license-server"):
        knowledge_for_settings(load_settings(analyzer_engine="re2", rules_file=bad))
