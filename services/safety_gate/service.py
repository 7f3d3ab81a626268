"""Safety-gate wiring: AnalysisCompleted in, GateDecided (with reasons) out."""

from __future__ import annotations

from prometheus_client import Counter

from medic.bus import Bus, Delivery
from medic.config import Settings
from medic.events import AnalysisCompleted, Event, GateDecided, GateDecidedPayload
from medic.runtime import Service
from medic.services.safety_gate.policy import decide

DECISIONS = Counter("medic_gate_decisions_total", "Gate decisions by outcome", ["outcome"])


class SafetyGateService(Service):
    name = "safety-gate"
    consumes = (AnalysisCompleted,)
    produces = (GateDecided,)

    def __init__(self, *, settings: Settings, bus: Bus) -> None:
        self.settings = settings
        self.bus = bus

    async def handle(self, event: Event, delivery: Delivery) -> None:
        if not isinstance(event, AnalysisCompleted):
            return
        analysis = event.payload
        policy = self.settings.policy_for(analysis.repository)
        decision = decide(analysis, policy, max_auto_attempts=self.settings.max_auto_attempts)
        ack = await self.bus.publish(
            GateDecided.answering(
                event,
                actor=self.name,
                payload=GateDecidedPayload(
                    outcome=decision.outcome,
                    reasons=decision.reasons,
                    risk=analysis.risk,
                    risk_threshold=policy.risk_threshold,
                    action=analysis.proposed_action,
                    repository=analysis.repository,
                    run_id=analysis.run_id,
                    run_attempt=analysis.run_attempt,
                ),
            )
        )
        if not ack.duplicate:
            DECISIONS.labels(decision.outcome.value).inc()
