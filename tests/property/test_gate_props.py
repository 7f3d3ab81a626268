"""Safety invariants of the gate over every analysis the analyzer could publish."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from medic.config import RepositoryPolicy
from medic.events import ActionKind, AnalysisCompletedPayload, AnalysisMethod, Category, GateOutcome
from medic.services.safety_gate.policy import MIN_CONFIDENCE, decide
from tests.property.strategies import gate_inputs

GateInput = tuple[AnalysisCompletedPayload, RepositoryPolicy, int]


@settings(max_examples=150)
@given(gate_inputs(category=st.just(Category.UNKNOWN)))
def test_unknown_cause_is_never_auto_remediated(given_input: GateInput) -> None:
    analysis, policy, limit = given_input
    decision = decide(analysis, policy, max_auto_attempts=limit)
    assert decision.outcome is GateOutcome.REQUIRE_APPROVAL


@settings(max_examples=150)
@given(gate_inputs())
def test_risk_above_threshold_is_never_auto_remediated(given_input: GateInput) -> None:
    analysis, policy, limit = given_input
    decision = decide(analysis, policy, max_auto_attempts=limit)
    if analysis.risk > policy.risk_threshold:
        assert decision.outcome is not GateOutcome.AUTO_REMEDIATE


@settings(max_examples=150)
@given(gate_inputs(protected=st.just(True)))
def test_protected_repository_is_never_auto_remediated(given_input: GateInput) -> None:
    analysis, policy, limit = given_input
    assert decide(analysis, policy, max_auto_attempts=limit).outcome is not GateOutcome.AUTO_REMEDIATE


@settings(max_examples=250)
@given(gate_inputs())
def test_every_decision_gives_at_least_one_nonempty_reason(given_input: GateInput) -> None:
    analysis, policy, limit = given_input
    decision = decide(analysis, policy, max_auto_attempts=limit)
    assert len(decision.reasons) >= 1
    assert all(reason.strip() for reason in decision.reasons)


@settings(max_examples=250)
@given(gate_inputs())
def test_auto_remediate_only_when_every_check_passes(given_input: GateInput) -> None:
    analysis, policy, limit = given_input
    decision = decide(analysis, policy, max_auto_attempts=limit)
    all_pass = (
        analysis.category is not Category.UNKNOWN
        and analysis.proposed_action.kind is not ActionKind.NONE
        and not policy.protected
        and policy.auto_remediate
        and analysis.risk <= policy.risk_threshold
        and analysis.confidence >= MIN_CONFIDENCE
        and analysis.proposed_action.kind in policy.allowed_actions
        and analysis.run_attempt < limit
    )
    assert (decision.outcome is GateOutcome.AUTO_REMEDIATE) == all_pass


@settings(max_examples=150)
@given(gate_inputs())
def test_no_action_only_for_a_rules_known_cause_without_an_action(given_input: GateInput) -> None:
    analysis, policy, limit = given_input
    decision = decide(analysis, policy, max_auto_attempts=limit)
    expected = (
        analysis.proposed_action.kind is ActionKind.NONE
        and analysis.category is not Category.UNKNOWN
        and analysis.method is AnalysisMethod.RULES
        and analysis.confidence >= MIN_CONFIDENCE
    )
    assert (decision.outcome is GateOutcome.NO_ACTION) == expected
