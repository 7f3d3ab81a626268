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
import os
import resource
import statistics
import sys
import tempfile
import time
import uuid
from asyncio.subprocess import Process
from pathlib import Path
from typing import Any

from medic.bus import Bus, Topology
from medic.embedded import free_port
from medic.events import EVENT_TYPE_NAMES, decode_event
from tests.bench import cpu_split
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


async def _start_sandbox_github(port: int, webhook_url: str, failures: int, out: Path) -> Process:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.bench.github_process",
        str(port),
        webhook_url,
        str(failures),
        str(out),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    ready = await asyncio.wait_for(process.stdout.readline(), timeout=300)
    if ready.strip() != b"ready":
        raise RuntimeError(f"sandbox GitHub did not start: {ready!r}")
    return process


async def _stop_sandbox_github(process: Process) -> dict[str, float]:
    assert process.stdin is not None and process.stdout is not None
    process.stdin.close()
    line = await asyncio.wait_for(process.stdout.readline(), timeout=60)
    await asyncio.wait_for(process.wait(), timeout=60)
    return dict(json.loads(line))


def _process_cpu(pid: int | None) -> float | None:
    """CPU seconds (user + system) of another process, from /proc; None where unreadable."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def pipeline_figures(
    nats_url: str, database_url: str, *, failures: int, nats_pid: int | None = None, profile: bool = False
) -> list[dict[str, Any]]:
    """The burst's figures; with ``profile`` only its CPU split (the profiler slows the process
    about twofold, so a profiled burst's rate and latencies are not the system's)."""
    token = uuid.uuid4().hex[:8]
    topology = Topology(stream=f"BENCH_{token}", prefix=f"bench{token}")
    port, github_port = free_port(), free_port()
    with tempfile.TemporaryDirectory(prefix="medic-pipeline-bench-") as tmp:
        deliveries_file = Path(tmp) / "deliveries.jsonl"
        github = await _start_sandbox_github(
            github_port, f"http://127.0.0.1:{port}/webhooks/github", failures, deliveries_file
        )
        deliveries = [json.loads(line) for line in deliveries_file.read_text(encoding="utf-8").splitlines()]
        try:
            async with running_pipeline(
                nats_url=nats_url,
                database_url=database_url,
                topology=topology,
                db_schema=f"bench_{token}",
                port=port,
                github_api_url=f"http://127.0.0.1:{github_port}",
            ) as pipeline:
                measured = await _burst(pipeline, nats_url, topology, deliveries, nats_pid, profile=profile)
        finally:
            github_cpu = await _stop_sandbox_github(github)
    latencies, elapsed, catch_up, lag_samples, cpu, profiler = measured
    github_burst_cpu = github_cpu["cpu_s"] - github_cpu["cpu_preparing_s"]
    per_failure = github_cpu.get("requests", 0) / failures
    figures = [
        {
            "figure": "pipeline_failures_per_second",
            "value": round(failures / elapsed, 1),
            "unit": "failures/s",
            "failures": failures,
            "load_average_1m": round(os.getloadavg()[0], 2),
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
        {
            "figure": "pipeline_cpu_ms_per_failure",
            "value": round(cpu["pipeline"] / failures * 1000, 2),
            "unit": "ms CPU/failure",
            "cpu_s": {
                "pipeline_process": round(cpu["pipeline"], 2),
                "sandbox_github_process": round(github_burst_cpu, 2),
                "nats_server": None if cpu["nats"] is None else round(cpu["nats"], 2),
            },
            "note": "CPU of the process running the 7 services (and the bench's client) during the burst; "
            "the sandbox GitHub runs in its own process and nats-server in its own, shown beside it; "
            "PostgreSQL's backends are not counted",
        },
    ]
    if profiler is not None:
        if os.environ.get("BENCH_PROFILE_TEXT"):
            Path(os.environ["BENCH_PROFILE_TEXT"]).write_text(  # noqa: ASYNC240 - once, after the measurement
                profiler.output_text(show_all=False), encoding="utf-8"
            )
        return [
            {
                "figure": "pipeline_cpu_split",
                "value": cpu_split.shares(cpu_split.split(profiler.last_session)),
                "unit": "share of sampled busy time in the pipeline process",
                "failures": failures,
                "cpu_s": figures[-1]["cpu_s"],
                "note": "a separate, profiled burst (pyinstrument, 2 ms); a sample goes to the innermost "
                "service package on its stack; BENCH_PROFILE_TEXT=FILE writes the call tree",
            }
        ]
    return figures


async def _burst(
    pipeline: Any,
    nats_url: str,
    topology: Topology,
    deliveries: list[dict[str, str]],
    nats_pid: int | None,
    *,
    profile: bool,
) -> tuple[list[float], float, float, list[int], dict[str, Any], Any]:
    """Post every webhook (16 at a time) and wait for every terminal event, then for the projector."""
    starts: dict[str, float] = {}
    ends: dict[str, float] = {}
    bus = await Bus.connect(nats_url, topology)
    watcher = asyncio.create_task(_watch_terminal(bus, len(deliveries), ends))
    gate = asyncio.Semaphore(16)

    async def post(delivery: dict[str, str]) -> None:
        body = delivery["body"].encode()
        headers = {
            "X-GitHub-Event": "workflow_run",
            "X-GitHub-Delivery": delivery["guid"],
            "X-Hub-Signature-256": _sign(body),
            "Content-Type": "application/json",
        }
        async with gate:
            starts[delivery["failure_id"]] = time.perf_counter()
            response = await pipeline.http.post(
                f"{pipeline.url}/webhooks/github", content=body, headers=headers
            )
            response.raise_for_status()

    lag_samples: list[int] = []
    sampler = asyncio.create_task(_sample_projection_lag(bus, lag_samples))
    profiler = None
    if profile:
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.002, async_mode="disabled")
        profiler.start()
    own_cpu, nats_cpu = _self_cpu(), _process_cpu(nats_pid)
    began = time.perf_counter()
    await asyncio.gather(*(post(d) for d in deliveries))
    await asyncio.wait_for(watcher, timeout=600)
    elapsed = time.perf_counter() - began
    cpu = {"pipeline": _self_cpu() - own_cpu}
    nats_after = _process_cpu(nats_pid)
    cpu["nats"] = None if nats_cpu is None or nats_after is None else nats_after - nats_cpu
    if profiler is not None:
        profiler.stop()
    settled = time.perf_counter()
    while await bus.pending("projector") > 0:  # noqa: ASYNC110 - polling the server's count
        await asyncio.sleep(0.05)
    catch_up = time.perf_counter() - settled
    sampler.cancel()
    await bus.close()
    latencies = [ends[f] - starts[f] for f in starts]
    return latencies, elapsed, catch_up, lag_samples, cpu, profiler


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
