"""Failures per second through the whole pipeline (rules path), against the bus's own rate.

Each failure is a signed ``workflow_run`` webhook posted by the bench itself, so its start
time is exact; its end is the arrival of its terminal event (GateDecided no_action,
ApprovalRequested or RemediationFinished) on an ordered consumer. The baseline, measured
in the same run on the same server: raw nats-py JetStream publish (pipelined acks) and
pull-and-ack consume of the same number of messages of the same size.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
import uuid
from typing import Any

from medic.bus import Bus, Topology
from medic.events import EVENT_TYPE_NAMES, decode_event, derive_failure_id
from medic.sandbox.github_payloads import Links, workflow_run_event
from medic.sandbox.github_scenarios import scenario_mix
from tests.pipeline import running_pipeline

TERMINAL = {"ApprovalRequested", "RemediationFinished"}


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def _watch_terminal(bus: Bus, expected: int, ends: dict[str, float]) -> None:
    done = asyncio.Event()

    async def on_message(msg: Any) -> None:
        event = decode_event(msg.data)
        terminal = event.event_type in TERMINAL or (
            event.event_type == "GateDecided" and event.payload.outcome.value == "no_action"  # type: ignore[union-attr]
        )
        if terminal and event.failure_id not in ends:
            ends[event.failure_id] = time.perf_counter()
            if len(ends) >= expected:
                done.set()

    sub = await bus.js.subscribe(bus.topology.events_wildcard, cb=on_message, ordered_consumer=True)
    try:
        await done.wait()
    finally:
        await sub.unsubscribe()


async def pipeline_figures(nats_url: str, database_url: str, *, failures: int) -> list[dict[str, Any]]:
    token = uuid.uuid4().hex[:8]
    topology = Topology(stream=f"BENCH_{token}", prefix=f"bench{token}")
    async with running_pipeline(
        nats_url=nats_url, database_url=database_url, topology=topology, db_schema=f"bench_{token}"
    ) as pipeline:
        sandbox = pipeline.sandbox
        links = Links(api=pipeline.sandbox_url)
        deliveries = []
        for index, scenario in enumerate(scenario_mix(failures, start=0)):
            run = sandbox.store.add_failed_run(f"bench-org/repo-{index % 5}", scenario)
            failure_id = derive_failure_id(run.repository.full_name, run.id, 1)
            deliveries.append(
                (
                    failure_id,
                    sandbox.webhooks.prepare(
                        "workflow_run", workflow_run_event("completed", run, run.latest, links)
                    ),
                )
            )
        starts: dict[str, float] = {}
        ends: dict[str, float] = {}
        bus = await Bus.connect(nats_url, topology)
        watcher = asyncio.create_task(_watch_terminal(bus, failures, ends))
        gate = asyncio.Semaphore(16)

        async def post(failure_id: str, delivery: Any) -> None:
            headers = {
                "X-GitHub-Event": "workflow_run",
                "X-GitHub-Delivery": delivery.guid,
                "X-Hub-Signature-256": _sign(delivery.body),
                "Content-Type": "application/json",
            }
            async with gate:
                starts[failure_id] = time.perf_counter()
                response = await pipeline.http.post(
                    f"{pipeline.url}/webhooks/github", content=delivery.body, headers=headers
                )
                response.raise_for_status()

        lag_samples: list[int] = []
        sampler = asyncio.create_task(_sample_projection_lag(bus, lag_samples))
        began = time.perf_counter()
        await asyncio.gather(*(post(f, d) for f, d in deliveries))
        await asyncio.wait_for(watcher, timeout=300)
        elapsed = time.perf_counter() - began
        settled = time.perf_counter()
        while await bus.pending("projector") > 0:  # noqa: ASYNC110 - polling the server's count
            await asyncio.sleep(0.05)
        catch_up = time.perf_counter() - settled
        sampler.cancel()
        await bus.close()
        await sandbox.drain()
        requests = sum(window.used for window in sandbox.budget.windows.values())
    latencies = [ends[f] - starts[f] for f in starts]
    per_failure = requests / failures
    return [
        {
            "figure": "pipeline_failures_per_second",
            "value": round(failures / elapsed, 1),
            "unit": "failures/s",
            "failures": failures,
        },
        {
            "figure": "pipeline_latency_p50",
            "value": round(statistics.median(latencies) * 1000, 1),
            "unit": "ms",
            "from": "webhook POST",
            "to": "terminal event",
        },
        {
            "figure": "pipeline_latency_p99",
            "value": round(_percentile(latencies, 0.99) * 1000, 1),
            "unit": "ms",
        },
        {
            "figure": "projection_lag_max",
            "value": max(lag_samples, default=0),
            "unit": "events",
            "note": "most events not yet applied by the projector, sampled every 100 ms during the run",
        },
        {
            "figure": "github_requests_per_failure",
            "value": round(per_failure, 2),
            "unit": "requests",
            "note": "GitHub requests the sandbox counted (monitor, executor) per failure",
        },
        {
            "figure": "failures_per_hour_per_token",
            "value": int(5000 / per_failure) if per_failure else None,
            "unit": "failures/h",
            "note": "how many failures one token's 5,000 requests per hour cover at that rate",
        },
        {
            "figure": "projection_catch_up",
            "value": round(catch_up * 1000, 1),
            "unit": "ms",
            "note": "from the last terminal event until the projector had applied everything",
        },
    ]


async def _sample_projection_lag(bus: Bus, samples: list[int]) -> None:
    while True:
        samples.append(await bus.pending("projector"))
        await asyncio.sleep(0.1)


def _sign(body: bytes) -> str:
    from medic.services.monitor.signature import sign
    from tests.pipeline import WEBHOOK_SECRET

    return sign(body, WEBHOOK_SECRET)


async def raw_jetstream_figures(nats_url: str, *, messages: int, size: int) -> list[dict[str, Any]]:
    token = uuid.uuid4().hex[:8]
    topology = Topology(stream=f"RAW_{token}", prefix=f"raw{token}")
    bus = await Bus.connect(nats_url, topology)
    subject = topology.subject(EVENT_TYPE_NAMES[0])
    body = json.dumps({"pad": "x" * size}).encode()
    try:
        began = time.perf_counter()
        gate = asyncio.Semaphore(256)  # acks pipelined, as Bus.publish_many does

        async def one() -> None:
            async with gate:
                await bus.js.publish(subject, body, stream=topology.stream)

        await asyncio.gather(*(one() for _ in range(messages)))
        published = time.perf_counter() - began
        psub = await bus.js.pull_subscribe(subject, durable="raw", stream=topology.stream)
        began = time.perf_counter()
        consumed = 0
        while consumed < messages:
            batch = await psub.fetch(min(256, messages - consumed), timeout=5)
            for msg in batch:
                await msg.ack()
            consumed += len(batch)
        consumed_s = time.perf_counter() - began
    finally:
        await bus.js.delete_stream(topology.stream)
        await bus.js.delete_stream(topology.dlq_stream)
        await bus.close()
    return [
        {
            "figure": "raw_jetstream_publish_rate",
            "value": round(messages / published),
            "unit": "msg/s",
            "messages": messages,
            "bytes": len(body),
        },
        {
            "figure": "raw_jetstream_consume_rate",
            "value": round(messages / consumed_s),
            "unit": "msg/s",
            "messages": messages,
        },
    ]
