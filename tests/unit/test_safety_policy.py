"""The organisation-wide policy, one guard at a time: each has its own reason text and setting."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from medic.config import ConfigError, Settings, load_settings
from medic.events import ActionKind, Category, FileEdit, GateOutcome, ProposedAction
from medic.services.safety_gate.guards import Breaker, HourlyBudget, Incident, Switches
from medic.services.safety_gate.policy import DRY_RUN_REASON, KILL_REASON, PolicyState, decide
from medic.services.safety_gate.scope import matches, plain_relative, scope_problems
from tests.unit.test_safety_gate import REPO, analysis, policy

NOW = datetime(2026, 11, 29, 15, 0, tzinfo=UTC)


def state(settings: Settings | None = None, **changes: Any) -> PolicyState:
    guard = (settings or Settings()).guard_for(REPO)
    return PolicyState(guard=guard, failure_id="f-1", now=NOW, **changes)


def decided(settings: Settings | None = None, analysed: Any = None, **changes: Any) -> Any:
    return decide(analysed or analysis(), policy(), max_auto_attempts=2, state=state(settings, **changes))


def test_with_nothing_active_the_policy_adds_no_blocker() -> None:
    decision = decided()
    assert decision.outcome is GateOutcome.AUTO_REMEDIATE and decision.executes


def test_the_kill_switch_from_config_or_at_run_time_stops_automatic_actions() -> None:
    for decision in (decided(Settings(kill_switch=True)), decided(switches=Switches(kill_switch=True))):
        assert decision.outcome is GateOutcome.REQUIRE_APPROVAL
        assert KILL_REASON in decision.reasons


def test_dry_run_decides_as_usual_marks_it_and_executes_nothing() -> None:
    decision = decided(switches=Switches(dry_run=True))
    assert decision.outcome is GateOutcome.AUTO_REMEDIATE
    assert decision.dry_run and not decision.executes
    assert decision.reasons[-1] == DRY_RUN_REASON
    repo_only = Settings(repository_configs={REPO: {"dry_run": True}})
    assert decided(repo_only).dry_run
    assert not Settings(repository_configs={REPO: {"dry_run": True}}).guard_for("octo-org/other").dry_run


def test_a_protected_branch_glob_needs_a_person_even_in_an_unprotected_repository() -> None:
    settings = Settings(protected_branches="main,release/*")
    on_release = decided(settings, analysis(branch="release/2.0"))
    assert on_release.outcome is GateOutcome.REQUIRE_APPROVAL
    assert "branch release/2.0 is protected ('release/*'): a person decides" in on_release.reasons
    assert decided(settings, analysis(branch="feature/x")).executes
    assert decided(settings, analysis(branch="release/2.0/x")).executes  # * stops at /


def test_an_open_breaker_pauses_the_repository_until_reset() -> None:
    decision = decided(breaker=Breaker(repository=REPO, failed_in_a_row=3, open=True))
    assert decision.outcome is GateOutcome.REQUIRE_APPROVAL
    assert any(f"medic policy reset {REPO}" in r for r in decision.reasons)


def test_an_incident_hold_holds_infrastructure_re_runs_only_while_it_lasts() -> None:
    hold = Incident(fingerprint="fp", held_until=NOW + timedelta(minutes=5), held_repositories=("a/b",) * 3)
    infra = analysis(category=Category.INFRASTRUCTURE)
    decision = decided(None, infra, incident=hold)
    assert decision.outcome is GateOutcome.REQUIRE_APPROVAL
    assert any(r.startswith("incident hold:") for r in decision.reasons)
    assert decided(None, analysis(), incident=hold).executes  # a flaky test is not the incident
    lifted = hold.model_copy(update={"held_until": NOW})
    assert decided(None, infra, incident=lifted).executes
    assert decided(Settings(incident_hold=False), infra, incident=hold).executes


def test_over_budget_means_approval_with_the_budget_named_and_a_granted_failure_stays_granted() -> None:
    settings = Settings(repository_hourly_budget=2, organisation_hourly_budget=3)
    full = HourlyBudget(organisation="octo-org", hour="x", grants={"a": REPO, "b": REPO})
    decision = decided(settings, budget=full)
    assert decision.outcome is GateOutcome.REQUIRE_APPROVAL
    assert f"budget: 2 of 2 automatic remediations in {REPO} this hour are used" in decision.reasons
    org_full = HourlyBudget(
        organisation="octo-org", hour="x", grants={"a": "octo-org/x", "b": "o/y", "c": "o/z"}
    )
    assert "budget: 3 of 3 automatic remediations in organisation octo-org this hour are used" in (
        decided(settings, budget=org_full).reasons
    )
    mine = full.model_copy(update={"grants": {"a": REPO, "f-1": REPO}})
    assert decided(settings, budget=mine).executes  # a redelivery is not a second remediation


def test_budget_reservation_is_idempotent_and_respects_both_limits() -> None:
    guard = Settings(repository_hourly_budget=1, organisation_hourly_budget=2).guard_for(REPO)
    empty = HourlyBudget(organisation="octo-org", hour="h")
    one = empty.reserve("f1", guard)
    assert one is not None and one.reserve("f1", guard) == one
    assert one.reserve("f2", guard) is None  # repository full
    other = Settings(organisation_hourly_budget=2).guard_for("octo-org/other")
    two = one.reserve("f3", other)
    assert two is not None and two.reserve("f4", other) is None  # organisation full


def test_the_breaker_opens_after_n_red_verdicts_in_a_row_counts_each_failure_once_and_resets() -> None:
    b = Breaker(repository=REPO)
    b = b.after("f1", green=False, threshold=2).after("f1", green=False, threshold=2)
    assert b.failed_in_a_row == 1 and not b.open
    assert b.after("f2", green=True, threshold=2).failed_in_a_row == 0
    b = b.after("f3", green=False, threshold=2)
    assert b.open and b.opened_by == "f3"
    reset = b.reset(by="alice", at=NOW)
    assert not reset.open and reset.failed_in_a_row == 0 and reset.reset_by == "alice"


def test_an_incident_starts_at_the_nth_repository_within_the_window_only() -> None:
    guard = Settings(incident_repositories=3, incident_window_minutes=10).guard_for(REPO)
    i = Incident(fingerprint="fp")
    i = i.seen("a/one", NOW, cause="e1", guard=guard).seen(
        "a/two", NOW + timedelta(minutes=1), cause="e2", guard=guard
    )
    assert not i.holding(NOW + timedelta(minutes=1))
    late = i.seen("a/three", NOW + timedelta(minutes=20), cause="e3", guard=guard)
    assert not late.holding(NOW + timedelta(minutes=20))  # the first two are outside the window
    held = i.seen("A/ONE", NOW + timedelta(minutes=2), cause="e3", guard=guard)
    assert not held.holding(NOW + timedelta(minutes=2))  # the same repository twice is one
    held = i.seen("a/three", NOW + timedelta(minutes=2), cause="e3", guard=guard)
    assert held.holding(NOW + timedelta(minutes=2)) and held.started_by == "e3"
    assert held.held_repositories == ("a/one", "a/three", "a/two")
    assert not held.lift(by="bob", at=NOW + timedelta(minutes=3)).holding(NOW + timedelta(minutes=3))


def fix(*paths: str) -> Any:
    edits = tuple(FileEdit(path=p, old_text="a", new_text="b") for p in paths)
    return analysis(proposed_action=ProposedAction(kind=ActionKind.OPEN_FIX_PR, edits=edits))


def test_change_scope_denies_workflows_unless_the_repository_allows_them() -> None:
    allow_fix = {"allowed_actions": (ActionKind.OPEN_FIX_PR,)}
    pol = policy(**allow_fix)
    denied = decide(fix(".github/workflows/ci.yml"), pol, max_auto_attempts=2, state=state())
    assert denied.outcome is GateOutcome.REQUIRE_APPROVAL
    assert any("denied by '.github/workflows/**'" in r for r in denied.reasons)
    assert decide(fix("jest.config.js"), pol, max_auto_attempts=2, state=state()).executes
    allowed = Settings(repository_configs={REPO: {"allow_workflow_edits": True}})
    assert decide(fix(".github/workflows/ci.yml"), pol, max_auto_attempts=2, state=state(allowed)).executes
    nothing = decide(fix(), pol, max_auto_attempts=2, state=state())
    assert "change scope: the fix proposes no edits" in nothing.reasons


@pytest.mark.parametrize(
    "path", ["/etc/passwd", "../x", "a/../../b", "a//b", "./a", "a\\b", "a\nb", "", ".GitHub/Workflows/x.yml"]
)
def test_hostile_or_disguised_paths_are_outside_every_scope(path: str) -> None:
    assert scope_problems([path], Settings().guard_for(REPO))


def test_allow_and_deny_globs_come_from_settings() -> None:
    guard = Settings(fix_allowed_paths="src/**,*.config.js", fix_denied_paths="src/secrets/**").guard_for(
        REPO
    )
    assert scope_problems(["src/a/b.py", "jest.config.js"], guard) == []
    assert scope_problems(["src/secrets/k.py"], guard)[0].endswith(f"denied by 'src/secrets/**' in {REPO}")
    assert "outside the allowed paths" in scope_problems(["docs/x.md"], guard)[0]
    assert "outside the allowed paths" in scope_problems(["lib/jest.config.js"], guard)[0]


def test_globs_treat_star_and_double_star_differently_and_everything_else_literally() -> None:
    assert matches("release/1", "release/*") and not matches("release/1/2", "release/*")
    assert matches("a/b/c.yml", "a/**") and matches("c.yml", "**/c.yml") and matches("x/y/c.yml", "**/c.yml")
    assert not matches("releaseX1", "release.1") and matches("release.1", "release.1")
    assert not matches("ab", "a[b]") and matches("a[b]", "a[b]")
    assert plain_relative("src/x.py") and not plain_relative("src/./x.py")


def test_bad_policy_settings_stop_start_up_naming_the_key() -> None:
    with pytest.raises(ConfigError, match="repository_hourly_budget"):
        load_settings(repository_hourly_budget=-1)
    with pytest.raises(ConfigError, match="breaker_threshold"):
        load_settings(repository_configs={REPO: {"breaker_threshold": 0}})
    with pytest.raises(ConfigError, match="organisation_configs"):
        load_settings(organisation_configs={"o": {"risk_threshold": 3}})  # not an organisation setting
