"""Safety-gate wiring: AnalysisCompleted in, GateDecided (with reasons) out; RemediationFinished
in, the circuit breaker counted; policy changes out as PolicyChanged."""

from __future__ import annotations

from fastapi import APIRouter
from prometheus_client import Counter

from medic.bus import Bus, Delivery
from medic.config import Settings
from medic.events import (
    AnalysisCompleted,
    Event,
    GateDecided,
    GateDecidedPayload,
    PolicyChanged,
    RemediationFinished,
    RemediationOutcome,
    utc_now,
)
from medic.runtime import Service
from medic.services.safety_gate.gate import Gate
from medic.services.safety_gate.http import policy_router
from medic.services.safety_gate.store import PolicyStore

DECISIONS = Counter("medic_gate_decisions_total", "Gate decisions by outcome", ["outcome"])


class SafetyGateService(Service):
    name = "safety-gate"
    consumes = (AnalysisCompleted, RemediationFinished)
    produces = (GateDecided, PolicyChanged)

    def __init__(self, *, settings: Settings, bus: Bus) -> None:
        self.settings = settings
        self.bus = bus
        self._gate: Gate | None = None

    @property
    def gate(self) -> Gate:
        if self._gate is None:
            raise RuntimeError("safety gate not started")
        return self._gate

    async def start(self) -> None:
        store = await PolicyStore.open(self.bus.js, self.bus.topology)
        self._gate = Gate(lambda: self.settings, store)

    def ready(self) -> bool:
        return self._gate is not None

    def router(self) -> APIRouter:
        return policy_router(lambda: self.settings, lambda: self.gate, self.bus)

    async def handle(self, event: Event, delivery: Delivery) -> None:
        if isinstance(event, RemediationFinished):
            green = event.payload.outcome is RemediationOutcome.SUCCEEDED
            opened = await self.gate.remediation_finished(
                event.failure_id, event.event_id, green=green, at=event.occurred_at
            )
            if opened is not None:
                await self.bus.publish(opened)
            return
        if not isinstance(event, AnalysisCompleted):
            return
        analysis = event.payload
        decided = await self.gate.decide(event.failure_id, event.event_id, analysis, now=utc_now())
        for change in decided.changes:
            await self.bus.publish(change)
        decision = decided.decision
        ack = await self.bus.publish(
            GateDecided.answering(
                event,
                actor=self.name,
                payload=GateDecidedPayload(
                    outcome=decision.outcome,
                    reasons=decision.reasons,
                    risk=analysis.risk,
                    risk_threshold=self.settings.policy_for(analysis.repository).risk_threshold,
                    action=analysis.proposed_action,
                    repository=analysis.repository,
                    run_id=analysis.run_id,
                    run_attempt=analysis.run_attempt,
                    dry_run=decision.dry_run,
                ),
            )
        )
        if not ack.duplicate:
            DECISIONS.labels(decision.outcome.value).inc()
