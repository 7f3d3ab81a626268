"""The gate with its memory: one consistent read of the policy state, the pure decision, and
the budget reservation in the same compare-and-set, so what was decided is what was counted.

Every policy change this produces comes back as a :class:`PolicyChanged` whose id is derived
from what caused it, so a redelivery (or a repeated API call after a crash) publishes the same
event again, which JetStream drops, instead of a second fact or none.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from medic.config import Settings
from medic.events import (
    POLICY_FAILURE_ID,
    AnalysisCompletedPayload,
    GateOutcome,
    PolicyChange,
    PolicyChanged,
    PolicyChangedPayload,
    derive_event_id,
)
from medic.services.safety_gate.guards import HOLD_CATEGORIES, HourlyBudget, Incident, Switches
from medic.services.safety_gate.policy import GateDecision, PolicyState, decide
from medic.services.safety_gate.store import PolicyStore

ACTOR = "safety-gate"


@dataclass(frozen=True)
class Decided:
    decision: GateDecision
    changes: tuple[PolicyChanged, ...] = ()


def policy_event(
    cause: str, change: PolicyChange, at: datetime, *, scope: str, by: str, reason: str, **extra: object
) -> PolicyChanged:
    """A policy change whose id is the same for the same cause (dedup on repeat)."""
    return PolicyChanged(
        event_id=derive_event_id(cause, f"PolicyChanged/{change.value}", at),
        occurred_at=at,
        failure_id=POLICY_FAILURE_ID,
        causation_id=None,
        actor=by,
        payload=PolicyChangedPayload(change=change, scope=scope, reason=reason, changed_by=by, **extra),
    )


class Gate:
    def __init__(self, settings: Callable[[], Settings], store: PolicyStore) -> None:
        self._settings = settings
        """Read per decision: a reloaded configuration applies to the next one."""
        self.store = store

    @property
    def settings(self) -> Settings:
        return self._settings()

    async def decide(
        self, failure_id: str, cause_id: str, analysis: AnalysisCompletedPayload, *, now: datetime
    ) -> Decided:
        guard = self.settings.guard_for(analysis.repository)
        policy = self.settings.policy_for(analysis.repository)
        changes: list[PolicyChanged] = []
        incident: Incident | None = None
        if guard.incident_hold and analysis.category in HOLD_CATEGORIES:
            _, incident = await self.store.change_incident(
                analysis.fingerprint, lambda i: i.seen(analysis.repository, now, cause=cause_id, guard=guard)
            )
            if incident is not None and incident.started_by == cause_id and incident.held_until is not None:
                changes.append(
                    policy_event(
                        cause_id,
                        PolicyChange.HOLD_STARTED,
                        now,
                        scope=analysis.fingerprint,
                        by=ACTOR,
                        reason=f"the same {analysis.category.value} failure in"
                        f" {len(incident.held_repositories)} repositories within"
                        f" {guard.incident_window_minutes:g} minutes",
                        repositories=incident.held_repositories,
                        until=incident.held_until,
                    )
                )
        switches = await self.store.switches()
        breaker = await self.store.breaker(analysis.repository)
        decided: list[GateDecision] = []

        def step(budget: HourlyBudget) -> HourlyBudget | None:
            state = PolicyState(
                guard=guard,
                failure_id=failure_id,
                now=now,
                switches=switches,
                breaker=breaker,
                incident=incident,
                budget=budget,
            )
            decision = decide(
                analysis, policy, max_auto_attempts=self.settings.max_auto_attempts, state=state
            )
            decided.append(decision)
            if decision.outcome is not GateOutcome.AUTO_REMEDIATE:
                return None
            return budget.reserve(failure_id, guard)

        await self.store.change_budget(guard.organisation, now, step)
        decision = decided[-1]
        if decision.executes:
            await self.store.mark_automatic(failure_id, analysis.repository)
        return Decided(decision, tuple(changes))

    async def remediation_finished(
        self, failure_id: str, cause_id: str, *, green: bool, at: datetime
    ) -> PolicyChanged | None:
        """Count an automatic remediation's verdict; the change if it opened the breaker."""
        repository = await self.store.automatic_repository(failure_id)
        if repository is None:
            return None  # a person approved it, or dry-run: the breaker counts automatic ones only
        guard = self.settings.guard_for(repository)
        _, breaker = await self.store.change_breaker(
            repository, lambda b: b.after(failure_id, green=green, threshold=guard.breaker_threshold)
        )
        change = None
        if breaker is not None and breaker.open and breaker.opened_by == failure_id:
            change = policy_event(
                cause_id,
                PolicyChange.BREAKER_OPENED,
                at,
                scope=repository,
                by=ACTOR,
                reason=f"{breaker.failed_in_a_row} automatic remediations in a row left CI red;"
                f" automatic mode is paused for {repository} until a person resets it",
            )
        await self.store.forget_automatic(failure_id)
        return change

    # --- people's commands (API, CLI) -----------------------------------------------------

    async def set_switch(self, name: str, on: bool, *, by: str, reason: str, at: datetime) -> PolicyChanged:
        """``kill_switch`` or ``dry_run``; repeating the same command republishes the same event."""

        def step(s: Switches) -> Switches:
            if getattr(s, name) == on:
                return s
            return s.model_copy(update={name: on, "changed_at": at, "changed_by": by})

        _, after = await self.store.set_switches(step)
        when = after.changed_at or at
        change = {
            ("kill_switch", True): PolicyChange.KILL_SWITCH_ON,
            ("kill_switch", False): PolicyChange.KILL_SWITCH_OFF,
            ("dry_run", True): PolicyChange.DRY_RUN_ON,
            ("dry_run", False): PolicyChange.DRY_RUN_OFF,
        }[(name, on)]
        return policy_event(
            f"switches/{when.isoformat()}",
            change,
            when,
            scope="global",
            by=after.changed_by or by,
            reason=reason,
        )

    async def reset_breaker(
        self, repository: str, *, by: str, reason: str, at: datetime
    ) -> PolicyChanged | None:
        """None when the breaker was never opened (nothing to reset)."""
        _, after = await self.store.change_breaker(repository, lambda b: b.reset(by=by, at=at))
        if after is None or after.reset_at is None:
            return None
        return policy_event(
            f"breaker/{repository.lower()}/{after.reset_at.isoformat()}",
            PolicyChange.BREAKER_RESET,
            after.reset_at,
            scope=repository,
            by=after.reset_by,
            reason=reason,
        )

    async def lift_hold(
        self, fingerprint: str, *, by: str, reason: str, at: datetime
    ) -> PolicyChanged | None:
        """None when no hold is known for this fingerprint."""
        if await self.store.incident(fingerprint) is None:
            return None
        _, after = await self.store.change_incident(fingerprint, lambda i: i.lift(by=by, at=at))
        if after is None or after.lifted_at is None:
            return None
        return policy_event(
            f"hold/{fingerprint}/{after.lifted_at.isoformat()}",
            PolicyChange.HOLD_LIFTED,
            after.lifted_at,
            scope=fingerprint,
            by=after.lifted_by,
            reason=reason,
        )
