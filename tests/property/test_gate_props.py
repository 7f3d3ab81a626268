"""Safety invariants of the gate, over inputs that reach every outcome.

Independent random fields almost never let every check pass at once, so "never automatic
when ..." would hold for a gate that never automates anything. The strategies therefore
also build inputs where every check passes (often exactly on the edges) and inputs where
exactly one check is pushed just past its edge; ``hypothesis.event`` labels each example
(see ``--hypothesis-show-statistics``), and ``test_every_outcome_and_every_check_is_reached``
fails if a strategy stops reaching any outcome or any check.
"""

from __future__ import annotations

from hypothesis import event, given, settings, target
from hypothesis import strategies as st

from medic.events import ActionKind, AnalysisMethod, Category, GateOutcome
from medic.services.safety_gate.policy import MIN_CONFIDENCE, GateDecision, decide
from tests.property.strategies import (
    GATE_CHECKS,
    GateInput,
    any_gate_inputs,
    gate_inputs,
    one_check_failing,
    passing_gate_inputs,
)


def gate(given_input: GateInput) -> GateDecision:
    """The one call into the gate (a new input of the gate changes only this)."""
    analysis, policy, limit = given_input
    return decide(analysis, policy, max_auto_attempts=limit)


def edges_of(given_input: GateInput) -> list[str]:
    analysis, policy, limit = given_input
    edges = []
    if analysis.risk == policy.risk_threshold:
        edges.append("risk == threshold")
    if analysis.confidence == MIN_CONFIDENCE:
        edges.append("confidence == floor")
    if analysis.run_attempt == limit - 1:
        edges.append("last allowed attempt")
    return edges


@settings(max_examples=200)
@given(passing_gate_inputs())
def test_every_check_passing_means_auto_remediate(given_input: GateInput) -> None:
    edges = edges_of(given_input)
    for edge in edges:
        event(f"edge: {edge}")
    target(float(len(edges)), label="edges hit at once")
    decision = gate(given_input)
    assert decision.outcome is GateOutcome.AUTO_REMEDIATE, decision.reasons


@settings(max_examples=100)
@given(passing_gate_inputs(at_edges=st.just(True)))
def test_every_edge_at_once_still_auto_remediates(given_input: GateInput) -> None:
    assert edges_of(given_input) == ["risk == threshold", "confidence == floor", "last allowed attempt"]
    assert gate(given_input).outcome is GateOutcome.AUTO_REMEDIATE


@settings(max_examples=300)
@given(one_check_failing())
def test_one_check_past_its_edge_alone_requires_approval(named: tuple[str, GateInput]) -> None:
    name, given_input = named
    event(f"failing check: {name}")
    decision = gate(given_input)
    assert decision.outcome is GateOutcome.REQUIRE_APPROVAL
    assert len(decision.reasons) == 1, decision.reasons


@settings(max_examples=150)
@given(gate_inputs.map(GATE_CHECKS["unknown cause"]) | any_gate_inputs(category=st.just(Category.UNKNOWN)))
def test_unknown_cause_is_never_auto_remediated(given_input: GateInput) -> None:
    assert gate(given_input).outcome is GateOutcome.REQUIRE_APPROVAL


@settings(max_examples=150)
@given(gate_inputs)
def test_risk_above_threshold_is_never_auto_remediated(given_input: GateInput) -> None:
    analysis, policy, _ = given_input
    decision = gate(given_input)
    event(f"risk {'above' if analysis.risk > policy.risk_threshold else 'at or below'} threshold")
    if analysis.risk > policy.risk_threshold:
        assert decision.outcome is not GateOutcome.AUTO_REMEDIATE


@settings(max_examples=150)
@given(gate_inputs.map(GATE_CHECKS["protected repository"]))
def test_protected_repository_is_never_auto_remediated(given_input: GateInput) -> None:
    assert gate(given_input).outcome is not GateOutcome.AUTO_REMEDIATE


@settings(max_examples=250)
@given(gate_inputs)
def test_every_decision_gives_at_least_one_nonempty_reason(given_input: GateInput) -> None:
    decision = gate(given_input)
    event(f"outcome: {decision.outcome.value}")
    assert len(decision.reasons) >= 1
    assert all(reason.strip() for reason in decision.reasons)


def every_check_passes(given_input: GateInput) -> bool:
    analysis, policy, limit = given_input
    return (
        analysis.category is not Category.UNKNOWN
        and analysis.proposed_action.kind is not ActionKind.NONE
        and not policy.protected
        and policy.auto_remediate
        and analysis.risk <= policy.risk_threshold
        and analysis.confidence >= MIN_CONFIDENCE
        and analysis.proposed_action.kind in policy.allowed_actions
        and analysis.run_attempt < limit
    )


def nothing_to_do(given_input: GateInput) -> bool:
    analysis, _, _ = given_input
    return (
        analysis.proposed_action.kind is ActionKind.NONE
        and analysis.category is not Category.UNKNOWN
        and analysis.method is AnalysisMethod.RULES
        and analysis.confidence >= MIN_CONFIDENCE
    )


@settings(max_examples=250)
@given(gate_inputs)
def test_auto_remediate_only_when_every_check_passes(given_input: GateInput) -> None:
    decision = gate(given_input)
    event(f"outcome: {decision.outcome.value}")
    assert (decision.outcome is GateOutcome.AUTO_REMEDIATE) == every_check_passes(given_input)


@settings(max_examples=150)
@given(gate_inputs)
def test_no_action_only_for_a_rules_known_cause_without_an_action(given_input: GateInput) -> None:
    decision = gate(given_input)
    event(f"outcome: {decision.outcome.value}")
    assert (decision.outcome is GateOutcome.NO_ACTION) == nothing_to_do(given_input)


def test_every_outcome_and_every_check_is_reached() -> None:
    """The strategies reach every outcome and make every check decide on its own.

    Without this, a change to a strategy (or a gate that stopped automating) could leave
    the properties above vacuously true.
    """
    outcomes: set[GateOutcome] = set()
    blocking: set[str] = set()

    @settings(max_examples=300, database=None)
    @given(gate_inputs, one_check_failing())
    def observe(given_input: GateInput, named: tuple[str, GateInput]) -> None:
        outcomes.add(gate(given_input).outcome)
        name, failing = named
        if gate(failing).outcome is GateOutcome.REQUIRE_APPROVAL:
            blocking.add(name)

    observe()
    assert outcomes == set(GateOutcome)
    assert blocking == set(GATE_CHECKS)
