"""The safety gate's decision: pure, deterministic, with every reason written down.

Order matters only for readability; every check that fails adds its reason, and any
failed check means a human decides. Nothing here reads a model's opinion except the
risk, which the analyzer already floored by the rules (a model can raise it, not lower it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from medic.confidence import AUTOMATIC_CONFIDENCE_FLOOR
from medic.config import GuardPolicy, RepositoryPolicy
from medic.events import ActionKind, AnalysisCompletedPayload, AnalysisMethod, Category, GateOutcome
from medic.services.safety_gate.guards import HOLD_CATEGORIES, Breaker, HourlyBudget, Incident, Switches
from medic.services.safety_gate.scope import first_match, scope_problems

MIN_CONFIDENCE = AUTOMATIC_CONFIDENCE_FLOOR
"""Below this the cause is not known well enough to act without a person."""


DRY_RUN_REASON = "dry-run: decided and recorded as usual; nothing is executed"
KILL_REASON = "kill switch is on: every automatic action is stopped"


@dataclass(frozen=True)
class GateDecision:
    outcome: GateOutcome
    reasons: tuple[str, ...]
    dry_run: bool = False

    @property
    def executes(self) -> bool:
        """Whether anything will run without a person: only automatic and not dry-run."""
        return self.outcome is GateOutcome.AUTO_REMEDIATE and not self.dry_run


@dataclass(frozen=True)
class PolicyState:
    """What the policy's store knows at the moment of deciding (one consistent read)."""

    guard: GuardPolicy
    failure_id: str = ""
    """The failure being decided: a budget that already counts it is not over for it."""
    now: datetime = field(default_factory=lambda: datetime.now(UTC))
    switches: Switches = field(default_factory=Switches)
    breaker: Breaker | None = None
    incident: Incident | None = None
    budget: HourlyBudget | None = None


def decide(
    analysis: AnalysisCompletedPayload,
    policy: RepositoryPolicy,
    *,
    max_auto_attempts: int,
    state: PolicyState | None = None,
) -> GateDecision:
    """The decision; without ``state`` only the per-failure checks apply (risk, confidence, ...)."""
    action = analysis.proposed_action.kind
    dry_run = state is not None and (state.guard.dry_run or state.switches.dry_run)
    marks = (DRY_RUN_REASON,) if dry_run else ()
    if _nothing_to_do(analysis):
        return GateDecision(
            GateOutcome.NO_ACTION,
            (f"{analysis.category.value}: no automatic action can fix this; the team is told", *marks),
            dry_run,
        )
    blockers = _blockers(analysis, policy, max_auto_attempts=max_auto_attempts)
    if state is not None:
        blockers += policy_blockers(analysis, state)
    if blockers:
        return GateDecision(GateOutcome.REQUIRE_APPROVAL, (*blockers, *marks), dry_run)
    return GateDecision(
        GateOutcome.AUTO_REMEDIATE,
        (
            f"risk {analysis.risk} <= threshold {policy.risk_threshold}",
            f"confidence {analysis.confidence:.2f} >= {MIN_CONFIDENCE}",
            f"{action.value} is allowed automatically in {policy.repository}",
            f"attempt {analysis.run_attempt} < limit {max_auto_attempts}",
            *marks,
        ),
        dry_run,
    )


def policy_blockers(analysis: AnalysisCompletedPayload, state: PolicyState) -> list[str]:
    """The organisation-wide policy: switches, branches, breaker, incident hold, budgets, scope."""
    guard = state.guard
    blockers: list[str] = []
    if guard.kill_switch or state.switches.kill_switch:
        blockers.append(KILL_REASON)
    branch_glob = first_match(analysis.branch, guard.protected_branches) if analysis.branch else None
    if branch_glob is not None:
        shown = analysis.branch.encode("unicode_escape").decode()[:100]
        blockers.append(f"branch {shown} is protected ({branch_glob!r}): a person decides")
    if state.breaker is not None and state.breaker.open:
        blockers.append(
            f"circuit breaker is open for {guard.repository}: {state.breaker.failed_in_a_row}"
            " automatic remediations in a row left CI red; a person must reset it"
            f" (medic policy reset {guard.repository})"
        )
    incident = state.incident
    if (
        guard.incident_hold
        and incident is not None
        and incident.holding(state.now)
        and analysis.category in HOLD_CATEGORIES
    ):
        assert incident.held_until is not None
        blockers.append(
            f"incident hold: the same {analysis.category.value} failure hit"
            f" {len(incident.held_repositories)} repositories; re-runs wait for a person or for the"
            f" hold to lift at {incident.held_until:%Y-%m-%d %H:%M}Z"
        )
    blockers += _budget_blockers(analysis, state)
    if analysis.proposed_action.kind is ActionKind.OPEN_FIX_PR:
        paths = [edit.path for edit in analysis.proposed_action.edits]
        if not paths:
            blockers.append("change scope: the fix proposes no edits")
        blockers += scope_problems(paths, guard)
    return blockers


def _budget_blockers(analysis: AnalysisCompletedPayload, state: PolicyState) -> list[str]:
    """Over budget means a person decides, not silence; a failure already granted stays granted."""
    budget, guard = state.budget, state.guard
    if budget is None or budget.granted(state.failure_id):
        return []
    blockers: list[str] = []
    used = budget.used_by(guard.repository)
    if used >= guard.repository_hourly_budget:
        blockers.append(
            f"budget: {used} of {guard.repository_hourly_budget} automatic remediations"
            f" in {guard.repository} this hour are used"
        )
    if budget.used >= guard.organisation_hourly_budget:
        blockers.append(
            f"budget: {budget.used} of {guard.organisation_hourly_budget} automatic remediations"
            f" in organisation {guard.organisation} this hour are used"
        )
    return blockers


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
