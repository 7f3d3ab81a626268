"""The safety gate's decision: pure, deterministic, with every reason written down.

Order matters only for readability; every check that fails adds its reason, and any
failed check means a human decides. Nothing here reads a model's opinion except the
risk, which the analyzer already floored by the rules (a model can raise it, not lower it).
"""

from __future__ import annotations

from dataclasses import dataclass

from medic.config import RepositoryPolicy
from medic.events import ActionKind, AnalysisCompletedPayload, AnalysisMethod, Category, GateOutcome

MIN_CONFIDENCE = 0.6
"""Below this the cause is not known well enough to act without a person."""


@dataclass(frozen=True)
class GateDecision:
    outcome: GateOutcome
    reasons: tuple[str, ...]


def decide(
    analysis: AnalysisCompletedPayload, policy: RepositoryPolicy, *, max_auto_attempts: int
) -> GateDecision:
    action = analysis.proposed_action.kind
    if _nothing_to_do(analysis):
        return GateDecision(
            GateOutcome.NO_ACTION,
            (f"{analysis.category.value}: no automatic action can fix this; the team is told",),
        )
    blockers = _blockers(analysis, policy, max_auto_attempts=max_auto_attempts)
    if blockers:
        return GateDecision(GateOutcome.REQUIRE_APPROVAL, tuple(blockers))
    return GateDecision(
        GateOutcome.AUTO_REMEDIATE,
        (
            f"risk {analysis.risk} <= threshold {policy.risk_threshold}",
            f"confidence {analysis.confidence:.2f} >= {MIN_CONFIDENCE}",
            f"{action.value} is allowed automatically in {policy.repository}",
            f"attempt {analysis.run_attempt} < limit {max_auto_attempts}",
        ),
    )


def _nothing_to_do(analysis: AnalysisCompletedPayload) -> bool:
    """A cause the rules know well, for which no automatic action exists: people are told.

    A model's or a cached model's opinion never settles a failure this way: what the
    rules could not explain goes to a person.
    """
    return (
        analysis.proposed_action.kind is ActionKind.NONE
        and analysis.category is not Category.UNKNOWN
        and analysis.method is AnalysisMethod.RULES
        and analysis.confidence >= MIN_CONFIDENCE
    )


def _blockers(
    analysis: AnalysisCompletedPayload, policy: RepositoryPolicy, *, max_auto_attempts: int
) -> list[str]:
    action = analysis.proposed_action.kind
    blockers: list[str] = []
    if analysis.category is Category.UNKNOWN or action is ActionKind.NONE:
        blockers.append("cause unknown: unknown means a human decides")
    if policy.protected:
        blockers.append(f"{policy.repository} is a protected repository")
    if not policy.auto_remediate:
        blockers.append(f"automatic remediation is turned off for {policy.repository}")
    if analysis.risk > policy.risk_threshold:
        blockers.append(f"risk {analysis.risk} is above the threshold {policy.risk_threshold}")
    if analysis.confidence < MIN_CONFIDENCE:
        blockers.append(f"confidence {analysis.confidence:.2f} is below {MIN_CONFIDENCE}")
    if action is not ActionKind.NONE and action not in policy.allowed_actions:
        blockers.append(f"{action.value} needs approval in {policy.repository}")
    if analysis.run_attempt >= max_auto_attempts:
        blockers.append(
            f"run attempt {analysis.run_attempt} reached the automatic limit of {max_auto_attempts}"
        )
    return blockers
