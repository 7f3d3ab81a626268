"""Invariants of the safety policy: what can never be executed, which value wins, and budgets
that two replicas cannot exceed between them, whatever the order of their steps."""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from medic.config import GuardPolicy, RepositoryPolicy, Settings
from medic.events import AnalysisCompletedPayload, Category, GateOutcome
from medic.services.safety_gate.guards import HOLD_CATEGORIES, HourlyBudget
from medic.services.safety_gate.policy import PolicyState, decide
from medic.services.safety_gate.scope import first_match
from tests.property.strategies import (
    guard_policies,
    layered_settings,
    replica_schedules,
    risks,
    stateful_gate_inputs,
)

Input = tuple[AnalysisCompletedPayload, RepositoryPolicy, int, PolicyState]


@settings(max_examples=300)
@given(stateful_gate_inputs(), risks)
def test_raising_risk_never_turns_approval_into_automatic(given_input: Input, higher: int) -> None:
    analysis, policy, limit, state = given_input
    before = decide(analysis, policy, max_auto_attempts=limit, state=state)
    riskier = analysis.model_copy(update={"risk": max(analysis.risk, higher)})
    after = decide(riskier, policy, max_auto_attempts=limit, state=state)
    if before.outcome is not GateOutcome.AUTO_REMEDIATE:
        assert after.outcome is not GateOutcome.AUTO_REMEDIATE


def _must_not_execute(
    analysis: AnalysisCompletedPayload, policy: RepositoryPolicy, state: PolicyState
) -> list[str]:
    g = state.guard
    reasons = []
    if policy.protected:
        reasons.append("protected repository")
    if analysis.category is Category.UNKNOWN:
        reasons.append("unknown cause")
    if g.kill_switch or state.switches.kill_switch:
        reasons.append("killed")
    if g.dry_run or state.switches.dry_run:
        reasons.append("dry-run")
    if (
        g.incident_hold
        and analysis.category in HOLD_CATEGORIES
        and state.incident is not None
        and state.incident.holding(state.now)
    ):
        reasons.append("held")
    if analysis.branch and first_match(analysis.branch, g.protected_branches):
        reasons.append("protected branch")
    if state.breaker is not None and state.breaker.open:
        reasons.append("breaker open")
    return reasons


@settings(max_examples=500)
@given(stateful_gate_inputs())
def test_protected_unknown_killed_dry_run_and_held_are_never_executed(given_input: Input) -> None:
    analysis, policy, limit, state = given_input
    decision = decide(analysis, policy, max_auto_attempts=limit, state=state)
    if _must_not_execute(analysis, policy, state):
        assert not decision.executes


@settings(max_examples=300)
@given(stateful_gate_inputs())
def test_dry_run_decides_as_usual_and_only_marks_the_decision(given_input: Input) -> None:
    analysis, policy, limit, state = given_input
    on = state.switches.model_copy(update={"dry_run": True})
    off_guard = state.guard.model_copy(update={"dry_run": False})
    dry = decide(analysis, policy, max_auto_attempts=limit, state=_with(state, switches=on))
    wet = decide(
        analysis,
        policy,
        max_auto_attempts=limit,
        state=_with(state, guard=off_guard, switches=on.model_copy(update={"dry_run": False})),
    )
    assert dry.outcome is wet.outcome and dry.dry_run and not wet.dry_run
    assert not dry.executes


def _with(state: PolicyState, **changes: object) -> PolicyState:
    from dataclasses import replace

    return replace(state, **changes)  # type: ignore[arg-type]


@settings(max_examples=300)
@given(layered_settings())
def test_a_repository_override_beats_the_organisation_which_beats_the_global_value(
    given_input: tuple[Settings, str, int | None, int | None],
) -> None:
    settings_, repository, org_value, repo_value = given_input
    expected = (
        repo_value
        if repo_value is not None
        else org_value
        if org_value is not None
        else settings_.repository_hourly_budget
    )
    assert settings_.guard_for(repository).repository_hourly_budget == expected
    assert settings_.guard_for(repository.upper()).repository_hourly_budget == expected


# --- two replicas, one budget ---------------------------------------------------------


@dataclass
class Bucket:
    """JetStream's compare-and-set, as the store uses it: a write names the revision it read."""

    value: HourlyBudget
    revision: int = 0

    def update(self, value: HourlyBudget, *, last: int) -> bool:
        if last != self.revision:
            return False
        self.value, self.revision = value, self.revision + 1
        return True


@dataclass
class Replica:
    failures: list[tuple[str, str]]
    """(failure id, repository) still to decide"""
    seen: tuple[HourlyBudget, int] | None = None
    granted: list[str] = field(default_factory=list)

    def step(self, bucket: Bucket, guards: dict[str, GuardPolicy]) -> None:
        if not self.failures:
            return
        if self.seen is None:
            self.seen = (bucket.value, bucket.revision)
            return
        failure_id, repository = self.failures[0]
        budget, revision = self.seen
        self.seen = None
        reserved = budget.reserve(failure_id, guards[repository])
        if reserved is None:
            self.failures.pop(0)  # over budget: a person decides
        elif bucket.update(reserved, last=revision):
            self.granted.append(failure_id)
            self.failures.pop(0)
        # else: lost the race; read again


@settings(max_examples=300)
@given(
    replica_schedules,
    st.lists(st.sampled_from(["o/a", "o/b"]), min_size=1, max_size=30),
    guard_policies(repository="o/a"),
    st.integers(0, 6),
)
def test_budgets_are_never_exceeded_by_two_replicas_in_any_interleaving(
    schedule: list[int], repos: list[str], guard: GuardPolicy, other_budget: int
) -> None:
    guards = {
        "o/a": guard,
        "o/b": guard.model_copy(update={"repository": "o/b", "repository_hourly_budget": other_budget}),
    }
    failures = [(f"f{i}", repo) for i, repo in enumerate(repos)]
    replicas = [Replica(failures[0::2]), Replica(failures[1::2])]
    bucket = Bucket(HourlyBudget(organisation="o", hour="2026112915"))
    for turn in schedule:
        replicas[turn].step(bucket, guards)
    while any(r.failures for r in replicas):  # then both run to the end, alternating
        for replica in replicas:
            replica.step(bucket, guards)
    final = bucket.value
    assert final.used_by("o/a") <= guard.repository_hourly_budget
    assert final.used_by("o/b") <= other_budget
    assert final.used <= guard.organisation_hourly_budget
    granted = [f for r in replicas for f in r.granted]
    assert sorted(granted) == sorted(final.grants)  # what a replica was told is what was counted
