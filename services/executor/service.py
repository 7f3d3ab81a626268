"""Executor wiring: GateDecided(auto_remediate) or ApprovalGranted in; RemediationStarted,
the typed action, verification by the next CI run, RemediationFinished out."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from prometheus_client import Counter

from medic.bus import Bus, Deferred, Delivery
from medic.config import Settings
from medic.events import (
    ApprovalGranted,
    Event,
    GateDecided,
    GateOutcome,
    ProposedAction,
    RemediationFinished,
    RemediationFinishedPayload,
    RemediationOutcome,
    RemediationStarted,
    RemediationStartedPayload,
    derive_event_id,
)
from medic.github.changes import RepositoryChanges
from medic.github.client import GitHubClient
from medic.github.errors import GitHubUnavailable, RateLimitExhausted
from medic.runtime import Service
from medic.services.executor.actions import ActionRefused, Target, perform
from medic.services.executor.intents import IntentState, IntentStore, RemediationIntent
from medic.services.executor.verification import wait_for_checks, wait_for_new_attempt
from medic.telemetry import logger

log = logger(__name__)
REMEDIATIONS = Counter("medic_remediations_total", "Finished remediations", ["action", "outcome"])


class ConcurrentRemediation(Exception):
    """Another handler wrote the intent first; retrying later finds its outcome."""


@dataclass(frozen=True)
class Order:
    """What to do, decided upstream (by the gate or a person); nothing here widens it."""

    failure_id: str
    cause_id: str
    cause_at: datetime
    action: ProposedAction
    target: Target
    approved_by: str | None


def order_from(event: Event) -> Order | None:
    if (
        isinstance(event, GateDecided)
        and event.payload.outcome is GateOutcome.AUTO_REMEDIATE
        and not event.payload.dry_run  # dry-run: decided and recorded, never executed
    ):
        p = event.payload
        return Order(
            event.failure_id,
            event.event_id,
            event.occurred_at,
            p.action,
            Target(p.repository, p.run_id, event.failure_id, p.reasons),
            None,
        )
    if isinstance(event, ApprovalGranted):
        g = event.payload
        return Order(
            event.failure_id,
            event.event_id,
            event.occurred_at,
            g.action,
            Target(g.repository, g.run_id, event.failure_id, approved_by=g.approver),
            g.approver,
        )
    return None


class ExecutorService(Service):
    name = "executor"
    consumes = ("GateDecided", "ApprovalGranted")

    def __init__(self, *, settings: Settings, bus: Bus, github: GitHubClient) -> None:
        self.settings = settings
        self.bus = bus
        self.github = github
        self._intents: IntentStore | None = None

    async def start(self) -> None:
        self._intents = await IntentStore.open(self.bus.js, f"{self.bus.topology.stream}_remediations")

    def ready(self) -> bool:
        return self._intents is not None

    @property
    def intents(self) -> IntentStore:
        if self._intents is None:
            raise RuntimeError("executor not started")
        return self._intents

    async def handle(self, event: Event, delivery: Delivery) -> None:
        order = order_from(event)
        if order is None:
            return
        try:
            await self._carry_out(order, delivery)
        except RateLimitExhausted as exc:
            if delivery.num_delivered < self.settings.max_deliver:
                raise Deferred(f"GitHub rate limit: {exc}", delay_seconds=exc.seconds_until_reset()) from exc
            await self._give_up(order, f"GitHub's rate limit stayed spent through every retry: {exc}")

    async def _give_up(self, order: Order, detail: str) -> None:
        """An explicit end with its reason, never a failure left in ``remediating``."""
        intent = await self.intents.get(order.failure_id) or RemediationIntent(
            failure_id=order.failure_id,
            repository=order.target.repository,
            run_id=order.target.run_id,
            action=order.action,
            baseline_attempt=0,
            approved_by=order.approved_by,
        )
        if intent.state is not IntentState.FINISHED:
            await self._finish(order, intent, RemediationOutcome.FAILED, detail, None)

    async def _carry_out(self, order: Order, delivery: Delivery) -> None:
        intent = await self.intents.get(order.failure_id)
        if intent is not None and intent.state is IntentState.FINISHED:
            return
        if intent is None or intent.state is IntentState.INTENDED:
            intent = await self._act(order, intent)
            if intent.state is IntentState.FINISHED:
                return
        await self._verify(order, intent, delivery)

    async def _act(self, order: Order, intent: RemediationIntent | None) -> RemediationIntent:
        run = await self.github.get_run(order.target.repository, order.target.run_id)
        if intent is None:
            intent = RemediationIntent(
                failure_id=order.failure_id,
                repository=order.target.repository,
                run_id=order.target.run_id,
                action=order.action,
                baseline_attempt=run.run_attempt,
                approved_by=order.approved_by,
            )
            if not await self.intents.create(intent):
                raise ConcurrentRemediation(f"{order.failure_id} is being remediated by another handler")
        await self.bus.publish(
            RemediationStarted(
                event_id=derive_event_id(order.cause_id, "RemediationStarted", order.cause_at),
                failure_id=order.failure_id,
                causation_id=order.cause_id,
                actor=self.name,
                payload=RemediationStartedPayload(
                    action=order.action,
                    repository=order.target.repository,
                    run_id=order.target.run_id,
                    approved_by=order.approved_by,
                ),
            )
        )
        checks_ref = None
        if run.run_attempt > intent.baseline_attempt:
            detail = "the action had gone through before a restart"
        else:  # a fix pull request is found again, not reopened, when this repeats after a crash
            try:
                performed = await perform(order.action, order.target, self.github)
            except ActionRefused as exc:
                await self._finish(order, intent, RemediationOutcome.FAILED, str(exc), None)
                return intent.model_copy(update={"state": IntentState.FINISHED})
            detail, checks_ref = performed.detail, performed.checks_ref
        sent = intent.model_copy(
            update={"state": IntentState.SENT, "detail": detail, "checks_ref": checks_ref}
        )
        await self.intents.put(sent)
        return sent

    async def _verify(self, order: Order, intent: RemediationIntent, delivery: Delivery) -> None:
        try:
            if intent.checks_ref is not None:  # a fix: its pull request's checks decide
                verdict = await wait_for_checks(
                    RepositoryChanges(self.github),
                    intent.repository,
                    intent.checks_ref,
                    within_seconds=self.settings.verify_timeout_seconds,
                    heartbeat=delivery.in_progress,
                )
            else:
                verdict = await wait_for_new_attempt(
                    self.github,
                    intent.repository,
                    intent.run_id,
                    after_attempt=intent.baseline_attempt,
                    within_seconds=self.settings.verify_timeout_seconds,
                    heartbeat=delivery.in_progress,
                )
        except (GitHubUnavailable, RateLimitExhausted):
            raise  # transient: redelivered (after the reset, for a rate limit); verification resumes
        outcome = RemediationOutcome.SUCCEEDED if verdict.green else RemediationOutcome.FAILED
        await self._finish(order, intent, outcome, f"{intent.detail}; {verdict.detail}", verdict.attempt)

    async def _finish(
        self,
        order: Order,
        intent: RemediationIntent,
        outcome: RemediationOutcome,
        detail: str,
        attempt: int | None,
    ) -> None:
        await self.bus.publish(
            RemediationFinished(
                event_id=derive_event_id(order.cause_id, "RemediationFinished", order.cause_at),
                failure_id=order.failure_id,
                causation_id=order.cause_id,
                actor=self.name,
                payload=RemediationFinishedPayload(
                    action=order.action,
                    repository=intent.repository,
                    run_id=intent.run_id,
                    outcome=outcome,
                    detail=detail,
                    verified_run_attempt=attempt,
                ),
            )
        )
        await self.intents.put(intent.model_copy(update={"state": IntentState.FINISHED, "detail": detail}))
        REMEDIATIONS.labels(order.action.kind.value, outcome.value).inc()
        log.info("remediation_finished", failure_id=order.failure_id, outcome=outcome.value, detail=detail)
