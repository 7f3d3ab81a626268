"""The burst a new user tried: 200 failures against a sandbox GitHub whose rate limit runs out
many times over (100 requests per 10 s window here, so the test takes minutes, not hours).
Every failure is analysed from its real log once the limit resets, none from an empty one, and
none is left in a state nobody will move it out of."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from prometheus_client import REGISTRY

from medic.bus import Bus, Topology
from medic.events import FailureDetected, decode_event
from medic.sandbox.simulate import simulate
from tests.pipeline import SETTLED, running_pipeline

pytestmark = pytest.mark.e2e
FAILURES = 200


async def detected(bus: Bus) -> list[FailureDetected]:
    sub = await bus.js.pull_subscribe(bus.topology.subject("FailureDetected"), stream=bus.topology.stream)
    found: list[FailureDetected] = []
    try:
        while True:
            try:
                batch = await sub.fetch(500, timeout=1)
            except TimeoutError:
                return found
            for msg in batch:
                event = decode_event(msg.data)
                assert isinstance(event, FailureDetected)
                found.append(event)
                await msg.ack()
    finally:
        with contextlib.suppress(Exception):
            await sub.unsubscribe()


async def test_a_burst_beyond_the_rate_limit_waits_for_the_reset_and_settles_every_failure(
    nats_url: str, database_url: str, topology: Topology, db_schema: str
) -> None:
    async with running_pipeline(
        nats_url=nats_url,
        database_url=database_url,
        topology=topology,
        db_schema=db_schema,
        github_max_wait_seconds=1.0,
    ) as pipeline:
        budget = pipeline.sandbox.budget
        budget.token_limit, budget.window_seconds = 100, 10  # resets further off than a call waits
        budget.windows.clear()
        deferred_before = REGISTRY.get_sample_value("medic_failures_deferred_total") or 0.0
        await simulate(pipeline.sandbox_url, FAILURES)
        summary: dict[str, Any] = await pipeline.wait_settled(FAILURES, within=600)

        states = summary["by_state"]
        assert summary["total_failures"] == FAILURES
        assert set(states) <= SETTLED, states  # nothing stuck in remediating or analysed
        assert max(w.used for w in budget.windows.values()) <= 100
        deferred = (REGISTRY.get_sample_value("medic_failures_deferred_total") or 0.0) - deferred_before
        assert deferred > 0, "the burst never met the limit: this test would prove nothing"
        bus = await Bus.connect(nats_url, topology)
        try:
            events = await detected(bus)
        finally:
            await bus.close()
        assert len({e.failure_id for e in events}) == FAILURES
        reasons = [j.log_unavailable_reason or "" for e in events for j in e.payload.failed_jobs]
        assert not [r for r in reasons if "rate limit" in r.lower()], "analysed without its log"
        assert all(
            j.log_tail.strip() for e in events for j in e.payload.failed_jobs if not j.log_unavailable_reason
        )
