"""What the executor is told to do: an order from the gate (automatic) or from a person (approved).

Nothing here widens what was decided upstream: the action is the one the gate or the
approver saw, on the run they saw.
"""

from __future__ import annotations

from dataclasses import dataclass

from medic.events import ApprovalGranted, Envelope, Event, GateDecided, GateOutcome, ProposedAction
from medic.services.executor.actions import Target


@dataclass(frozen=True)
class Order:
    cause: Envelope
    """The decision this order carries out; the executor's events answer it."""
    action: ProposedAction
    target: Target
    approved_by: str | None

    @property
    def failure_id(self) -> str:
        return self.cause.failure_id


def order_from(event: Event) -> Order | None:
    """The order in an event, or None for a decision that orders nothing."""
    if (
        isinstance(event, GateDecided)
        and event.payload.outcome is GateOutcome.AUTO_REMEDIATE
        and not event.payload.dry_run  # dry-run: decided and recorded, never executed
    ):
        p = event.payload
        return Order(event, p.action, Target(p.repository, p.run_id, event.failure_id, p.reasons), None)
    if isinstance(event, ApprovalGranted):
        g = event.payload
        target = Target(g.repository, g.run_id, event.failure_id, approved_by=g.approver)
        return Order(event, g.action, target, g.approver)
    return None
