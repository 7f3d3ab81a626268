"""When GitHub says "slow down": a failure waits for its logs instead of being analysed without
them, and the executor waits for the reset instead of exhausting its redeliveries; a remediation
that still cannot reach GitHub on its last delivery ends failed with its reason, never stuck."""

from __future__ import annotations

import asyncio
import contextlib
import uuid

from prometheus_client import REGISTRY

from medic.bus import Bus
from medic.config import load_settings
from medic.events import (
    ActionKind,
    GateDecided,
    GateDecidedPayload,
    GateOutcome,
    ProposedAction,
    RemediationFinished,
    RemediationOutcome,
    decode_event,
    derive_failure_id,
)
from medic.github.client import GitHubClient
from medic.runtime import HttpServer, ServiceHost
from medic.sandbox.github import create_sandbox_github
from medic.services.executor.service import ExecutorService
from tests.integration.monitor_support import (
    all_detected,
    monitor_world,
    post_webhook,
    run_completed_payload,
    wait_for_detected,
)
from tests.waiting import wait_for

REPO = "octo-org/octo-repo"


def deferred_count() -> float:
    """Failures the monitor put back to wait for GitHub's reset (the positive signal that it tried)."""
    return REGISTRY.get_sample_value("medic_failures_deferred_total") or 0.0


async def test_a_failure_whose_logs_are_rate_limited_waits_for_the_reset_and_is_reported_with_them(
    bus: Bus,
) -> None:
    async with monitor_world(bus) as world:
        run = world.sandbox.add_failed_run("acme/api", "flaky_test")
        monitor = await world.monitor()
        url = await world.serve(monitor)
        world.sandbox.set_modes({"rate_limit_exhausted_for_seconds": 3})
        deferred = deferred_count()
        response = await post_webhook(url, "workflow_run", run_completed_payload(world, run))
        assert response.status_code == 202
        await wait_for(lambda: deferred_count() > deferred, what="the monitor deferred the failure")
        assert await all_detected(bus) == []  # not reported without its log
        [event] = await wait_for_detected(bus, 1, within=15)
        job = event.payload.failed_jobs[0]
        assert job.log_tail.strip() and job.log_unavailable_reason is None


def order(run_id: int) -> GateDecided:
    return GateDecided(
        failure_id=derive_failure_id(REPO, run_id, 1),
        causation_id=str(uuid.uuid4()),
        actor="safety-gate",
        payload=GateDecidedPayload(
            outcome=GateOutcome.AUTO_REMEDIATE,
            reasons=("risk 1 <= threshold 4",),
            risk=1,
            risk_threshold=4,
            action=ProposedAction(kind=ActionKind.RERUN_FAILED_JOBS),
            repository=REPO,
            run_id=run_id,
            run_attempt=1,
        ),
    )


async def finished(bus: Bus, *, within: float) -> RemediationFinished | None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    subject = bus.topology.subject("RemediationFinished")
    while loop.time() < deadline:
        with contextlib.suppress(Exception):
            msg = await bus.js.get_last_msg(bus.topology.stream, subject)
            event = decode_event(msg.data)
            assert isinstance(event, RemediationFinished)
            return event
        await asyncio.sleep(0.1)
    return None


async def run_executor(
    bus: Bus, *, limited_for: float, max_deliver: int, deferrals: int = 0
) -> tuple[RemediationFinished | None, int]:
    class Executor(ExecutorService):
        max_deferrals = deferrals  # a small budget of waits, to see the last one in seconds

    sandbox = create_sandbox_github(webhook_url=None, webhook_secret="unused", rerun_delay_seconds=0.1)
    server = HttpServer(sandbox.app)
    await server.start()
    github = GitHubClient(base_url=server.url, token="t", max_retry_seconds=0.5)
    settings = load_settings(github_api_url=server.url, verify_timeout_seconds=5, max_deliver=max_deliver)
    host = ServiceHost(
        settings=settings, bus=bus, services=[Executor(settings=settings, bus=bus, github=github)]
    )
    await host.start()
    try:
        run = sandbox.add_failed_run(REPO, "flaky_test")
        sandbox.set_modes({"rate_limit_exhausted_for_seconds": limited_for})
        await bus.publish(order(run.id))
        result = await finished(bus, within=20)
        return result, len(run.attempts)  # read from the sandbox: GitHub may still be rate limited
    finally:
        await host.stop()
        await sandbox.drain()
        await github.aclose()
        await server.stop()
        with contextlib.suppress(Exception):
            await bus.js.delete_key_value(f"{bus.topology.stream}_remediations")


async def test_the_executor_defers_until_the_reset_and_then_acts_once(bus: Bus) -> None:
    result, attempt = await run_executor(bus, limited_for=3, max_deliver=1, deferrals=2)
    assert result is not None and result.payload.outcome is RemediationOutcome.SUCCEEDED, result
    assert attempt == 2


async def test_a_remediation_that_cannot_reach_github_on_its_last_delivery_ends_failed_with_the_reason(
    bus: Bus,
) -> None:
    result, attempt = await run_executor(bus, limited_for=60, max_deliver=1)
    assert result is not None and result.payload.outcome is RemediationOutcome.FAILED
    assert "rate limit" in result.payload.detail
    assert attempt == 1


async def test_a_verdict_reached_without_any_log_is_never_cached(bus: Bus) -> None:
    from datetime import UTC, datetime

    from medic.events import FailedJob, FailureDetected, FailureDetectedPayload
    from medic.llm.client import ModelClient
    from medic.sandbox.openai import create_sandbox_model
    from medic.services.analyzer.knowledge import knowledge_for_settings
    from medic.services.analyzer.service import AnalyzerService

    model_app = create_sandbox_model()
    model_server = HttpServer(model_app.app)
    await model_server.start()
    model = ModelClient(base_url=f"{model_server.url}/v1", api_key="sandbox", model="gpt-4o-mini")
    analyzer = AnalyzerService(bus=bus, knowledge_for=knowledge_for_settings(load_settings()), model=model)
    host = ServiceHost(settings=load_settings(), bus=bus, services=[analyzer])
    await host.start()
    try:
        for run_id in (1, 2, 3):
            no_log = FailedJob(job_id=run_id, name="test", log_unavailable_reason="log: rate limited")
            await bus.publish(
                FailureDetected(
                    failure_id=derive_failure_id(REPO, run_id, 1),
                    actor="monitor",
                    payload=FailureDetectedPayload(
                        repository=REPO,
                        run_id=run_id,
                        run_attempt=1,
                        workflow_name="CI",
                        detected_at=datetime.now(UTC),
                        failed_jobs=(no_log,),
                    ),
                )
            )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 20
        subject = bus.topology.subject("AnalysisCompleted")
        analysed = 0
        while loop.time() < deadline and analysed < 3:
            info = await bus.js.stream_info(bus.topology.stream, subjects_filter=subject)
            analysed = int((info.state.subjects or {}).get(subject, 0))
            await asyncio.sleep(0.1)
        assert analysed == 3
        cache = await bus.js.key_value(f"{bus.topology.stream}_analysis_cache")
        status = await cache.status()
        assert status.values == 0  # nothing under the empty log's fingerprint for the next one to reuse
    finally:
        await host.stop()
        await model.aclose()
        await model_server.stop()
        with contextlib.suppress(Exception):
            await bus.js.delete_key_value(f"{bus.topology.stream}_analysis_cache")
