"""The analyzer's "ask a person" cap and the gate's floor agree (they meet only through the kernel).

A run with one job the rules explain as an automatic-fix category and one job they cannot
explain is capped by the analyzer; the gate must then ask a person, even when everything
else (risk, repository, action, attempt) would let it act on its own.
"""

from __future__ import annotations

from pathlib import Path

from medic.confidence import AUTOMATIC_CONFIDENCE_FLOOR, NEEDS_A_PERSON
from medic.config import RepositoryPolicy
from medic.events import ActionKind, AnalysisMethod, Category, FailedJob, GateOutcome
from medic.services.analyzer.classify import analyze_failure
from medic.services.analyzer.knowledge import default_knowledge_base
from medic.services.analyzer.second_opinion import rules_only
from medic.services.safety_gate.policy import decide

LOGS = Path(__file__).resolve().parents[1] / "data" / "logs" / "runner"


def test_the_cap_is_below_the_floor_whatever_the_comparison() -> None:
    assert NEEDS_A_PERSON < AUTOMATIC_CONFIDENCE_FLOOR


def test_an_unexplained_job_beside_an_explained_one_needs_a_person() -> None:
    explained = FailedJob(job_id=1, name="build", log_tail=(LOGS / "shutdown_signal.log").read_text())
    unexplained = FailedJob(
        job_id=2, name="custom", log_tail=(LOGS / "custom_action_opaque_error.log").read_text()
    )
    alone = analyze_failure([explained], knowledge_base=default_knowledge_base())
    assert alone.category is Category.INFRASTRUCTURE and alone.confidence >= AUTOMATIC_CONFIDENCE_FLOOR

    combined = analyze_failure([explained, unexplained], knowledge_base=default_knowledge_base())

    assert combined.category is Category.INFRASTRUCTURE
    assert combined.confidence <= NEEDS_A_PERSON
    payload = rules_only(combined).to_payload(repository="octo/app", run_id=7, run_attempt=1)
    assert payload.method is AnalysisMethod.RULES
    policy = RepositoryPolicy(
        repository="octo/app",
        risk_threshold=10,
        auto_remediate=True,
        protected=False,
        slack_channel="#ci",
        allowed_actions=tuple(ActionKind),
    )
    alone_payload = rules_only(alone).to_payload(repository="octo/app", run_id=7, run_attempt=1)
    assert decide(alone_payload, policy, max_auto_attempts=5).outcome is GateOutcome.AUTO_REMEDIATE

    decision = decide(payload, policy, max_auto_attempts=5)

    assert decision.outcome is GateOutcome.REQUIRE_APPROVAL
    assert any("confidence" in reason and "below" in reason for reason in decision.reasons), decision.reasons
