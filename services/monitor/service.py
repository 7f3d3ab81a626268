"""Monitor wiring: GitHub webhooks and the poller feed one intake stream; FailureDetected out.

Reads: the intake work stream (runs recorded by :mod:`.http` and :mod:`.polling`).
Produces: FailureDetected, once per run attempt, built by :mod:`.detection`.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

from fastapi import APIRouter
from prometheus_client import Counter

from medic.bus import Bucket, Bus, Deferred, Delivery, Subscription
from medic.config import Settings
from medic.consumer import RATE_LIMIT_DEFERRALS
from medic.events import FailureDetected, utc_now
from medic.github.client import GitHubClient
from medic.github.errors import RateLimitExhausted
from medic.logstore import LogStore
from medic.runtime import Service
from medic.services.monitor.allowlist import RepositoryAllowlist
from medic.services.monitor.detection import (
    BranchPages,
    complete_partial,
    failed_jobs,
    failure_detected,
    run_history,
)
from medic.services.monitor.http import webhook_router
from medic.services.monitor.intake import RunToInspect, decode_run
from medic.services.monitor.polling import Poller
from medic.services.monitor.senders import WebhookSenders
from medic.services.monitor.store import Detections, PollState
from medic.telemetry import inject_headers, logger

log = logger(__name__)
DETECTIONS = Counter("medic_failures_detected_total", "FailureDetected events published", ["source"])
WAITING_FOR_GITHUB = Counter(
    "medic_failures_deferred_total", "Failures whose logs wait for GitHub's rate limit to reset"
)


class MonitorService(Service):
    name = "monitor"
    consumes = None  # reads its own intake stream, not the event log
    produces = (FailureDetected,)

    def __init__(self, *, settings: Settings, bus: Bus, github: GitHubClient) -> None:
        self.settings = settings
        self.bus = bus
        self.github = github
        self.branch_pages = BranchPages(github)
        """Failures of one branch share a page of its newest runs requested after they were received."""
        self.intake_stream = f"{bus.topology.stream}_INTAKE"
        self.intake_subject = f"{bus.topology.prefix}.intake.github"
        self.allowlist = RepositoryAllowlist(settings.allowed_repositories)
        self.replica = f"monitor-{uuid.uuid4().hex[:12]}"
        self.poller: Poller | None = None
        self.senders: WebhookSenders | None = None
        self._detections: Detections | None = None
        self._intake: Subscription | None = None
        self._logs: LogStore | None = None

    async def start(self) -> None:
        await self.bus.ensure_work_stream(self.intake_stream, [self.intake_subject])
        self._detections = await Detections.open(self.bus.js, self.bus.topology)
        self._logs = await LogStore.open(self.bus.js, self.bus.topology.bucket(Bucket.LOGS))
        self._intake = self.bus.subscribe_work(
            "monitor-intake",
            self._inspect,
            stream=self.intake_stream,
            subjects=[self.intake_subject],
            decode=decode_run,
            max_deliver=self.settings.max_deliver,
            max_deferrals=RATE_LIMIT_DEFERRALS,  # waiting for GitHub's reset is not a failed try
            concurrency=8,
            ack_wait_seconds=60,
        )
        await self._intake.start()
        await self._start_polling()

    async def _start_polling(self) -> None:
        settings = self.settings
        if settings.catch_up_polling:
            self.senders = await WebhookSenders.open(self.bus.js, self.bus.topology)
        if not (settings.poll_repositories or settings.poll_organisations or self.senders):
            return
        self.poller = Poller(
            github=self.github,
            state=await PollState.open(self.bus.js, self.bus.topology),
            record=self.record,
            repositories=settings.poll_repositories,
            organisations=settings.poll_organisations,
            allowlist=self.allowlist,
            interval_seconds=settings.polling_interval_minutes * 60,
            lookback=timedelta(minutes=settings.poll_lookback_minutes),
            holder=self.replica,
            discover=self.senders.repositories if self.senders else None,
        )
        self.poller.start()

    async def stop(self) -> None:
        if self.poller is not None:
            await self.poller.stop()
        if self._intake is not None:
            await self._intake.stop()

    def ready(self) -> bool:
        return self._intake is not None and self._intake.running

    def router(self) -> APIRouter:
        return webhook_router(
            settings=self.settings, allowlist=self.allowlist, record=self.record, sent=self._remember_sender
        )

    async def _remember_sender(self, repository: str) -> None:
        """A verified delivery names a repository the catch-up poll watches from now on (best effort)."""
        if self.senders is None or not self.allowlist.allows(repository):
            return
        try:
            await self.senders.remember(repository)
        except Exception as exc:  # the delivery itself must go on
            log.warning("webhook_sender_not_remembered", repository=repository, error=str(exc))

    async def record(self, run: RunToInspect) -> bool:
        """Put a run on the intake stream; False when it was already recorded (a duplicate).

        Stamped with the moment it was recorded, after GitHub said the run completed: what it
        receives later (history pages) must be at least that fresh.
        """
        run = run.model_copy(update={"received_at": utc_now()})
        ack = await self.bus.js.publish(
            self.intake_subject,
            run.model_dump_json().encode(),
            # the webhook's (or poll's) trace goes on through the intake hop to every service
            headers=inject_headers({"Nats-Msg-Id": run.failure_id}),
            stream=self.intake_stream,
        )
        return not ack.duplicate

    async def _inspect(self, run: RunToInspect, delivery: Delivery) -> None:
        """Report the attempt once, however many times and ways (webhooks, polls) it was recorded.

        Whether it was reported already is asked beside GitHub, not before it: a new failure
        (nearly every one: JetStream already dropped the intake's duplicates within its window)
        waits for the slower of the two, not for both in turn. An attempt found reported cancels
        the reads it started (at most the jobs list and the history page are then on the wire).
        """
        assert self._detections is not None, "start() opens the detections bucket"
        reported = asyncio.ensure_future(self._detections.reported(run.failure_id))
        detecting = asyncio.ensure_future(self._detect(run, delivery))
        try:
            already = await reported
        except BaseException:
            await _cancelled(detecting)
            raise
        if already:
            await _cancelled(detecting)
            return
        event = await detecting
        ack = await self.bus.publish(event)
        await self._detections.remember(run.failure_id, event.event_id)
        if not ack.duplicate:
            DETECTIONS.labels(run.source).inc()
            log.info("failure_detected", failure_id=event.failure_id, repository=run.repository)

    async def _detect(self, run: RunToInspect, delivery: Delivery) -> FailureDetected:
        """The attempt's FailureDetected, with its failed jobs' logs and the branch's history."""
        run = await complete_partial(self.github, run)
        last_chance = delivery.num_delivered >= self.settings.max_deliver + RATE_LIMIT_DEFERRALS
        # the history is read while the logs are: the failure waits for the slower, not the sum
        history_read = asyncio.ensure_future(run_history(self.github, run, self.branch_pages))
        try:
            jobs = await failed_jobs(
                self.github,
                run,
                log_tail_bytes=self.settings.log_tail_bytes,
                logs=self._logs,
                wait_for_rate_limit=not last_chance,
            )
        except BaseException as exc:
            await _cancelled(history_read)
            if isinstance(exc, RateLimitExhausted):  # logs first, then the analysis: wait for the reset
                WAITING_FOR_GITHUB.inc()
                raise Deferred(f"logs rate limited: {exc}", delay_seconds=exc.seconds_until_reset()) from exc
            raise
        await delivery.in_progress()
        return failure_detected(run, jobs, history=await history_read)


async def _cancelled(task: asyncio.Future[Any]) -> None:
    """Cancel ``task`` and wait until it has stopped (no orphan request, no unretrieved error)."""
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
