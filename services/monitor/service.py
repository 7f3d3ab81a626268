"""Monitor wiring: the GitHub webhook endpoint and the poller feed one intake stream; FailureDetected out."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, Request
from fastapi.responses import JSONResponse
from prometheus_client import Counter

from medic.bus import Bus, Deferred, Delivery, Subscription
from medic.config import Settings
from medic.github.client import GitHubClient
from medic.github.errors import RateLimitExhausted
from medic.logstore import LogStore
from medic.runtime import Service
from medic.services.monitor import signature
from medic.services.monitor.allowlist import RepositoryAllowlist
from medic.services.monitor.cursors import DETECTION_MEMORY_SECONDS, Detections, PollState, open_bucket
from medic.services.monitor.details import complete_partial, failed_jobs, failure_detected, run_history
from medic.services.monitor.intake import RunToInspect, decode_run
from medic.services.monitor.polling import Poller
from medic.services.monitor.webhooks import Ignored, WebhookRejected, interpret
from medic.telemetry import logger

log = logger(__name__)

WEBHOOKS = Counter("medic_webhooks_total", "GitHub webhook deliveries by outcome", ["event", "outcome"])
DETECTIONS = Counter("medic_failures_detected_total", "FailureDetected events published", ["source"])
WAITING_FOR_GITHUB = Counter(
    "medic_failures_deferred_total", "Failures whose logs wait for GitHub's rate limit to reset"
)
MAX_WEBHOOK_BYTES = 5 * 1024 * 1024


class MonitorService(Service):
    name = "monitor"
    consumes = None  # reads its own intake stream, not the event log

    def __init__(self, *, settings: Settings, bus: Bus, github: GitHubClient) -> None:
        self.settings = settings
        self.bus = bus
        self.github = github
        self.intake_stream = f"{bus.topology.stream}_INTAKE"
        self.intake_subject = f"{bus.topology.prefix}.intake.github"
        self.cursor_bucket = f"{bus.topology.stream}_monitor_cursors"
        self.detected_bucket = f"{bus.topology.stream}_monitor_detected"
        self.allowlist = RepositoryAllowlist(settings.allowed_repositories)
        self.replica = f"monitor-{uuid.uuid4().hex[:12]}"
        self.poller: Poller | None = None
        self._detections: Detections | None = None
        self._intake: Subscription | None = None
        self._logs: LogStore | None = None

    async def start(self) -> None:
        await self.bus.ensure_work_stream(self.intake_stream, [self.intake_subject])
        self._detections = Detections(
            await open_bucket(self.bus.js, self.detected_bucket, ttl=DETECTION_MEMORY_SECONDS)
        )
        self._intake = self.bus.subscribe_work(
            "monitor-intake",
            self._inspect,
            stream=self.intake_stream,
            subjects=[self.intake_subject],
            decode=decode_run,
            max_deliver=self.settings.max_deliver,
            concurrency=8,
            ack_wait_seconds=60,
        )
        self._logs = await LogStore.open(self.bus.js, f"{self.bus.topology.stream}_LOGS")
        await self._intake.start()
        await self._start_polling()

    async def _start_polling(self) -> None:
        settings = self.settings
        if not (settings.poll_repositories or settings.poll_organisations):
            return
        self.poller = Poller(
            github=self.github,
            state=PollState(await open_bucket(self.bus.js, self.cursor_bucket)),
            record=self.record,
            repositories=settings.poll_repositories,
            organisations=settings.poll_organisations,
            allowlist=self.allowlist,
            interval_seconds=settings.polling_interval_minutes * 60,
            lookback=timedelta(minutes=settings.poll_lookback_minutes),
            holder=self.replica,
        )
        self.poller.start()

    async def stop(self) -> None:
        if self.poller is not None:
            await self.poller.stop()
        if self._intake is not None:
            await self._intake.stop()

    def ready(self) -> bool:
        return self._intake is not None and self._intake.running

    async def record(self, run: RunToInspect) -> bool:
        """Put a run on the intake stream; False when it was already recorded (a duplicate)."""
        ack = await self.bus.js.publish(
            self.intake_subject,
            run.model_dump_json().encode(),
            headers={"Nats-Msg-Id": run.dedup_key},
            stream=self.intake_stream,
        )
        return not ack.duplicate

    async def _inspect(self, run: RunToInspect, delivery: Delivery) -> None:
        """Report the attempt once, however many times and ways (webhooks, polls) it was recorded."""
        assert self._detections is not None, "start() opens the detections bucket"
        if await self._detections.reported(run.dedup_key):
            return
        run = await complete_partial(self.github, run)
        last_chance = delivery.num_delivered >= self.settings.max_deliver
        try:
            jobs = await failed_jobs(
                self.github,
                run,
                log_tail_bytes=self.settings.log_tail_bytes,
                logs=self._logs,
                wait_for_rate_limit=not last_chance,
            )
        except RateLimitExhausted as exc:  # logs first, then the analysis: wait for the reset
            WAITING_FOR_GITHUB.inc()
            raise Deferred(f"logs rate limited: {exc}", delay_seconds=exc.seconds_until_reset()) from exc
        await delivery.in_progress()
        history = await run_history(self.github, run)
        event = failure_detected(run, jobs, history=history)
        ack = await self.bus.publish(event)
        await self._detections.remember(run.dedup_key, event.event_id)
        if not ack.duplicate:
            DETECTIONS.labels(run.source).inc()
            log.info("failure_detected", failure_id=event.failure_id, repository=run.repository)

    def router(self) -> APIRouter:
        router = APIRouter(tags=["monitor"])

        @router.post("/webhooks/github", status_code=202)
        async def github_webhook(
            request: Request,
            x_github_event: Annotated[str | None, Header()] = None,
            x_hub_signature_256: Annotated[str | None, Header()] = None,
            x_github_delivery: Annotated[str | None, Header()] = None,
        ) -> JSONResponse:
            body = await _read_capped(request)
            event_name = x_github_event or ""
            if not signature.verify(body, x_hub_signature_256, self.settings.webhook_secrets()):
                WEBHOOKS.labels(event_name or "unknown", "bad_signature").inc()
                raise HTTPException(401, "missing or invalid X-Hub-Signature-256")
            if not event_name:
                raise HTTPException(400, "missing X-GitHub-Event header")
            try:
                payload = json.loads(body)
            except ValueError as exc:
                WEBHOOKS.labels(event_name, "malformed").inc()
                raise HTTPException(400, f"body is not JSON: {exc}") from None
            try:
                outcome = interpret(event_name, payload, x_github_delivery)
            except WebhookRejected as exc:
                WEBHOOKS.labels(event_name, "malformed").inc()
                raise HTTPException(400, str(exc)) from None
            if isinstance(outcome, Ignored):
                WEBHOOKS.labels(event_name, "ignored").inc()
                return JSONResponse({"status": "ignored", "reason": outcome.reason}, status_code=200)
            if not self.allowlist.allows(outcome.repository):
                WEBHOOKS.labels(event_name, "not_allowed").inc()
                reason = "repository not in allowed_repositories"
                return JSONResponse({"status": "ignored", "reason": reason}, status_code=200)
            fresh = await self.record(outcome)
            WEBHOOKS.labels(event_name, "recorded" if fresh else "duplicate").inc()
            return JSONResponse(
                {"status": "recorded" if fresh else "duplicate", "run": outcome.dedup_key}, status_code=202
            )

        return router


async def _read_capped(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_WEBHOOK_BYTES:
        raise HTTPException(413, f"webhook body over {MAX_WEBHOOK_BYTES} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_WEBHOOK_BYTES:
            raise HTTPException(413, f"webhook body over {MAX_WEBHOOK_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
