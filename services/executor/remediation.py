"""Carrying out one order: intent first, the typed action, then verification by the next CI run.

A remediation counts as fixed only when CI is green again. The intent (with the run attempt
seen before acting) is written before GitHub is called, so after a crash the attempt number
tells whether the call went through: a redelivered order neither repeats the action blindly
nor forgets it. Once the action is sent the order is handed to ``wait_for_ci`` (the
verification work stream) and its handler is free; :meth:`Remediation.look` is each later look.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from prometheus_client import Counter

from medic.events import (
    Envelope,
    RemediationFinished,
    RemediationFinishedPayload,
    RemediationOutcome,
    RemediationStarted,
    RemediationStartedPayload,
)
from medic.github.changes import RepositoryChanges
from medic.github.client import GitHubClient
from medic.services.executor.actions import ActionRefused, perform
from medic.services.executor.orders import Order
from medic.services.executor.store import IntentState, IntentStore, RemediationIntent
from medic.services.executor.verification import (
    ChecksWatch,
    RunWatch,
    Verdict,
    look_at_checks,
    look_for_new_attempt,
    out_of_time,
)
from medic.telemetry import logger

log = logger(__name__)
REMEDIATIONS = Counter("medic_remediations_total", "Finished remediations", ["action", "outcome"])

Publish = Callable[[Envelope], Awaitable[object]]
WaitForCi = Callable[["Order"], Awaitable[None]]
"""Hand an order whose action was sent to the verification wait (durably; idempotent)."""


class ConcurrentRemediation(Exception):
    """Another handler wrote the intent first; retrying later finds its outcome."""


class Remediation:
    def __init__(
        self,
        *,
        github: GitHubClient,
        intents: IntentStore,
        publish: Publish,
        wait_for_ci: WaitForCi,
        actor: str,
    ) -> None:
        self.github = github
        self.intents = intents
        self.publish = publish
        self.wait_for_ci = wait_for_ci
        self.actor = actor
        self.runs = RunWatch(github)
        """The runs this process waits on, looked at with conditional requests."""
        self.checks = ChecksWatch(RepositoryChanges(github))
        """The fix pull requests' heads this process waits on, looked at the same way."""

    async def carry_out(self, order: Order) -> None:
        """Act once, then hand the order to the wait for CI; returns without waiting for it."""
        found = await self.intents.get(order.failure_id)
        intent = found.record if found else None
        if intent is not None and intent.state is IntentState.FINISHED:
            return
        if intent is None or intent.state is IntentState.INTENDED:
            intent = await self._act(order, intent)
            if intent.state is IntentState.FINISHED:
                return
        await self.wait_for_ci(order)  # also after a crash between SENT and here: the wait is idempotent

    async def look(
        self, order: Order, *, waited_seconds: float, within_seconds: float, last_look: bool
    ) -> bool:
        """One look at CI for a sent order; True when the remediation is finished.

        Past ``within_seconds`` (or on the last look the wait allows) it finishes as failed:
        unverified is never reported as fixed. GitHub errors propagate (the caller retries the
        look later); on the last look they end the wait as unverified, with the error.
        """
        found = await self.intents.get(order.failure_id)
        intent = found.record if found else None
        if intent is None or intent.state is not IntentState.SENT:
            return True  # finished already (or never sent: the order's own delivery handles that)
        out_of_wait = waited_seconds >= within_seconds or last_look
        try:
            verdict = await self._look_once(intent)
        except Exception as exc:
            if not out_of_wait:
                raise
            verdict = self._out_of_time(intent, within_seconds, why=f"GitHub: {exc}")
        if verdict is None and not out_of_wait:
            return False
        verdict = verdict or self._out_of_time(intent, within_seconds)
        outcome = RemediationOutcome.SUCCEEDED if verdict.green else RemediationOutcome.FAILED
        await self._finish(order, intent, outcome, f"{intent.detail}; {verdict.detail}", verdict.attempt)
        self.runs.forget(intent.repository, intent.run_id)
        if intent.checks_ref is not None:
            self.checks.forget(intent.repository, intent.checks_ref)
        return True

    async def give_up(self, order: Order, detail: str) -> None:
        """An explicit end with its reason, never a failure left in ``remediating``."""
        found = await self.intents.get(order.failure_id)
        intent = found.record if found else _intent_for(order, baseline_attempt=0)
        if intent.state is not IntentState.FINISHED:
            await self._finish(order, intent, RemediationOutcome.FAILED, detail, None)

    async def _act(self, order: Order, intent: RemediationIntent | None) -> RemediationIntent:
        run = await self.github.get_run(order.target.repository, order.target.run_id)
        if intent is None:
            intent = _intent_for(order, baseline_attempt=run.run_attempt)
            if not await self.intents.create(order.failure_id, intent):
                raise ConcurrentRemediation(f"{order.failure_id} is being remediated by another handler")
        await self.publish(
            RemediationStarted.answering(
                order.cause,
                actor=self.actor,
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
        await self.intents.put(order.failure_id, sent)
        return sent

    async def _look_once(self, intent: RemediationIntent) -> Verdict | None:
        if intent.checks_ref is not None:  # a fix: its pull request's checks decide
            return await look_at_checks(self.checks, intent.repository, intent.checks_ref)
        return await look_for_new_attempt(
            self.runs, intent.repository, intent.run_id, after_attempt=intent.baseline_attempt
        )

    @staticmethod
    def _out_of_time(intent: RemediationIntent, seconds: float, *, why: str = "") -> Verdict:
        return out_of_time(
            checks_ref=intent.checks_ref, after_attempt=intent.baseline_attempt, seconds=seconds, why=why
        )

    async def _finish(
        self,
        order: Order,
        intent: RemediationIntent,
        outcome: RemediationOutcome,
        detail: str,
        attempt: int | None,
    ) -> None:
        await self.publish(
            RemediationFinished.answering(
                order.cause,
                actor=self.actor,
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
        finished = intent.model_copy(update={"state": IntentState.FINISHED, "detail": detail})
        await self.intents.put(order.failure_id, finished)
        REMEDIATIONS.labels(order.action.kind.value, outcome.value).inc()
        log.info("remediation_finished", failure_id=order.failure_id, outcome=outcome.value, detail=detail)


def _intent_for(order: Order, *, baseline_attempt: int) -> RemediationIntent:
    return RemediationIntent(
        failure_id=order.failure_id,
        repository=order.target.repository,
        run_id=order.target.run_id,
        action=order.action,
        baseline_attempt=baseline_attempt,
        approved_by=order.approved_by,
    )
