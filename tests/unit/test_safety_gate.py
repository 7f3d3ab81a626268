"""The gate's decision, one reason at a time: any failed check means a person decides."""

from __future__ import annotations

from typing import Any

import pytest

from medic.config import DEFAULT_AUTO_ACTIONS, RepositoryPolicy
from medic.events import (
    ActionKind,
    AnalysisCompletedPayload,
    AnalysisMethod,
    Category,
    GateOutcome,
    ProposedAction,
)
from medic.services.safety_gate.policy import MIN_CONFIDENCE, decide

REPO = "octo-org/octo-repo"


def analysis(**changes: Any) -> AnalysisCompletedPayload:
    """An analysis every check passes; each test changes one thing."""
    fields: dict[str, Any] = {
        "repository": REPO,
        "run_id": 42,
        "run_attempt": 1,
        "category": Category.FLAKY_TEST,
        "risk": 2,
        "confidence": 0.9,
        "proposed_action": ProposedAction(kind=ActionKind.RERUN_FAILED_JOBS),
        "method": AnalysisMethod.RULES,
        "fingerprint": "abc123",
    }
    fields.update(changes)
    return AnalysisCompletedPayload(**fields)


def policy(**changes: Any) -> RepositoryPolicy:
    fields: dict[str, Any] = {
        "repository": REPO,
        "risk_threshold": 4,
        "auto_remediate": True,
        "protected": False,
        "slack_channel": "#ci",
        "allowed_actions": DEFAULT_AUTO_ACTIONS,
    }
    fields.update(changes)
    return RepositoryPolicy(**fields)


def test_auto_remediate_when_every_check_passes() -> None:
    decision = decide(analysis(), policy(), max_auto_attempts=2)
    assert decision.outcome is GateOutcome.AUTO_REMEDIATE
    assert decision.reasons == (
        "risk 2 <= threshold 4",
        "confidence 0.90 >= 0.6",
        f"rerun_failed_jobs is allowed automatically in {REPO}",
        "attempt 1 < limit 2",
    )


def test_boundaries_are_inclusive_where_the_policy_says_at_or_below() -> None:
    at_edge = analysis(risk=4, confidence=MIN_CONFIDENCE, run_attempt=1)
    assert (
        decide(at_edge, policy(risk_threshold=4), max_auto_attempts=2).outcome is GateOutcome.AUTO_REMEDIATE
    )


@pytest.mark.parametrize(
    ("changed_analysis", "changed_policy", "max_attempts", "reason"),
    [
        (
            {"category": Category.UNKNOWN},
            {},
            2,
            "cause unknown: unknown means a human decides",
        ),
        (
            {"category": Category.UNKNOWN, "proposed_action": ProposedAction(kind=ActionKind.NONE)},
            {},
            2,
            "cause unknown: unknown means a human decides",
        ),
        ({}, {"protected": True}, 2, f"{REPO} is a protected repository"),
        ({}, {"auto_remediate": False}, 2, f"automatic remediation is turned off for {REPO}"),
        ({"risk": 5}, {"risk_threshold": 4}, 2, "risk 5 is above the threshold 4"),
        ({"risk": 10}, {"risk_threshold": 0}, 2, "risk 10 is above the threshold 0"),
        ({"confidence": 0.59}, {}, 2, "confidence 0.59 is below 0.6"),
        ({"confidence": 0.0}, {}, 2, "confidence 0.00 is below 0.6"),
        (
            {"proposed_action": ProposedAction(kind=ActionKind.OPEN_FIX_PR)},
            {},
            2,
            f"open_fix_pr needs approval in {REPO}",
        ),
        (
            {"proposed_action": ProposedAction(kind=ActionKind.RERUN_WORKFLOW)},
            {"allowed_actions": (ActionKind.RERUN_FAILED_JOBS,)},
            2,
            f"rerun_workflow needs approval in {REPO}",
        ),
        ({"run_attempt": 2}, {}, 2, "run attempt 2 reached the automatic limit of 2"),
        ({"run_attempt": 1}, {}, 1, "run attempt 1 reached the automatic limit of 1"),
    ],
)
def test_each_blocker_requires_approval_with_its_reason(
    changed_analysis: dict[str, Any], changed_policy: dict[str, Any], max_attempts: int, reason: str
) -> None:
    decision = decide(analysis(**changed_analysis), policy(**changed_policy), max_auto_attempts=max_attempts)
    assert decision.outcome is GateOutcome.REQUIRE_APPROVAL
    assert decision.reasons == (reason,)


def test_every_failed_check_is_written_down() -> None:
    decision = decide(
        analysis(
            category=Category.UNKNOWN,
            risk=9,
            confidence=0.1,
            run_attempt=5,
            proposed_action=ProposedAction(kind=ActionKind.CLEAR_CACHE, cache_key="deps"),
        ),
        policy(protected=True, auto_remediate=False, allowed_actions=()),
        max_auto_attempts=2,
    )
    assert decision.outcome is GateOutcome.REQUIRE_APPROVAL
    assert len(decision.reasons) == 7
    joined = "\n".join(decision.reasons)
    for needle in (
        "unknown",
        "protected",
        "turned off",
        "risk 9",
        "confidence 0.10",
        "clear_cache",
        "attempt 5",
    ):
        assert needle in joined


@pytest.mark.parametrize("category", [c for c in Category if c is not Category.UNKNOWN])
def test_known_cause_without_action_is_no_action(category: Category) -> None:
    decision = decide(
        analysis(category=category, proposed_action=ProposedAction(kind=ActionKind.NONE), risk=10),
        policy(protected=True),
        max_auto_attempts=2,
    )
    assert decision.outcome is GateOutcome.NO_ACTION
    assert decision.reasons == (f"{category.value}: no automatic action can fix this; the team is told",)


@pytest.mark.parametrize(
    "changes",
    [
        {"method": AnalysisMethod.MODEL},
        {"method": AnalysisMethod.CACHE},
        {"confidence": MIN_CONFIDENCE - 0.01},
    ],
)
def test_no_action_needs_the_rules_to_know_the_cause_well(changes: dict[str, Any]) -> None:
    decision = decide(
        analysis(proposed_action=ProposedAction(kind=ActionKind.NONE), **changes),
        policy(),
        max_auto_attempts=2,
    )
    assert decision.outcome is GateOutcome.REQUIRE_APPROVAL
    assert "cause unknown: unknown means a human decides" in decision.reasons


def test_unknown_cause_is_never_no_action_even_without_an_action() -> None:
    decision = decide(
        analysis(category=Category.UNKNOWN, proposed_action=ProposedAction(kind=ActionKind.NONE)),
        policy(),
        max_auto_attempts=2,
    )
    assert decision.outcome is GateOutcome.REQUIRE_APPROVAL


def test_the_decision_is_deterministic() -> None:
    a, p = analysis(risk=7), policy(protected=True)
    assert decide(a, p, max_auto_attempts=2) == decide(a, p, max_auto_attempts=2)
