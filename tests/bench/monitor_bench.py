"""Monitor figures: webhook -> FailureDetected latency, and what idle polling costs in rate limit.

Both run against the real bus and the sandbox GitHub over HTTP, as the tests do.
Sizes: BENCH_MONITOR_WEBHOOKS (latency), BENCH_MONITOR_IDLE_REPOS and
BENCH_MONITOR_IDLE_INTERVALS (polling).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import statistics
import sys
import time
import uuid
from typing import Any

import httpx
from fastapi import FastAPI
from nats.aio.msg import Msg
from pydantic import SecretStr

from medic.bus import Bus, Topology
from medic.config import load_settings
from medic.github.client import GitHubClient
from medic.runtime import HttpServer
from medic.sandbox import github_payloads as payloads
from medic.sandbox.github import SandboxGitHub, create_sandbox_github
from medic.services.monitor.service import MonitorService
from medic.services.monitor.signature import sign

SECRET = "bench-secret"
TOKEN = "bench-token"
DEFAULT_INTERVAL_SECONDS = 300.0


async def run(nats_url: str) -> list[dict[str, Any]]:
    webhooks = int(os.environ.get("BENCH_MONITOR_WEBHOOKS", "200"))
    idle_repos = int(os.environ.get("BENCH_MONITOR_IDLE_REPOS", "20"))
    idle_intervals = int(os.environ.get("BENCH_MONITOR_IDLE_INTERVALS", "10"))
    return [
        await webhook_latency(nats_url, max(webhooks // 4, 1), concurrency=1),
        await webhook_latency(nats_url, webhooks),
        await idle_polling_cost(nats_url, idle_repos, idle_intervals),
    ]


@contextlib.asynccontextmanager
async def _monitor(nats_url: str, sandbox: SandboxGitHub, **settings: Any) -> Any:
    topology = Topology(stream=f"BENCH_MON_{uuid.uuid4().hex[:8]}", prefix=f"benchmon{uuid.uuid4().hex[:8]}")
    bus = await Bus.connect(nats_url, topology)
    github_server = HttpServer(sandbox.app)
    await github_server.start()
    github = GitHubClient(base_url=github_server.url, token=TOKEN)
    config = load_settings(
        github_webhook_secret=SecretStr(SECRET), github_api_url=github_server.url, **settings
    )
    service = MonitorService(settings=config, bus=bus, github=github)
    await service.start()
    app = FastAPI()
    app.include_router(service.router())
    server = HttpServer(app)
    await server.start()
    try:
        yield bus, service, server.url, github_server.url
    finally:
        await server.stop()
        await service.stop()
        await github.aclose()
        await github_server.stop()
        await _clean(bus, topology)
        await bus.close()


async def _clean(bus: Bus, topology: Topology) -> None:
    for stream in (topology.stream, topology.dlq_stream, f"{topology.stream}_INTAKE"):
        with contextlib.suppress(Exception):  # a leftover stream is harmless; the figure still counts
            await bus.js.delete_stream(stream)
    for bucket in ("monitor_cursors", "monitor_detected"):
        with contextlib.suppress(Exception):
            await bus.js.delete_key_value(f"{topology.stream}_{bucket}")


async def webhook_latency(nats_url: str, count: int, *, concurrency: int = 8) -> dict[str, Any]:
    """Signed ``workflow_run`` deliveries posted ``concurrency`` at a time; each timed to its event.

    With ``concurrency=1`` each delivery waits for its event first: the latency of one failure on
    an idle monitor. With more, deliveries queue in the intake and the figure includes that wait.
    """
    sandbox = create_sandbox_github(webhook_url=None, webhook_secret=SECRET)
    runs = [sandbox.add_failed_run(f"bench-org/repo-{i % 10}", "flaky_test") for i in range(count)]
    async with _monitor(nats_url, sandbox) as (bus, _, url, api):
        links = payloads.Links(api=api)
        posted: dict[int, float] = {}
        seen: dict[int, float] = {}
        done = asyncio.Event()

        arrived: dict[int, asyncio.Event] = {run.id: asyncio.Event() for run in runs}

        async def on_event(msg: Msg) -> None:
            run_id = json.loads(msg.data)["payload"]["run_id"]
            seen.setdefault(run_id, time.perf_counter())
            arrived[run_id].set()
            if len(seen) >= count:
                done.set()

        sub = await bus.nc.subscribe(bus.topology.subject("FailureDetected"), cb=on_event)
        slots = asyncio.Semaphore(concurrency)
        started = time.perf_counter()
        async with httpx.AsyncClient(timeout=30) as client:

            async def deliver(index: int) -> None:
                run = runs[index]
                body = json.dumps(payloads.workflow_run_event("completed", run, run.latest, links)).encode()
                headers = {
                    "X-GitHub-Event": "workflow_run",
                    "X-GitHub-Delivery": str(uuid.uuid4()),
                    "X-Hub-Signature-256": sign(body, SECRET),
                    "Content-Type": "application/json",
                }
                async with slots:
                    posted[run.id] = time.perf_counter()
                    response = await client.post(f"{url}/webhooks/github", content=body, headers=headers)
                    response.raise_for_status()
                    if concurrency == 1:
                        await asyncio.wait_for(arrived[run.id].wait(), timeout=30)

            await asyncio.gather(*(deliver(i) for i in range(count)))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), timeout=120)
        elapsed = time.perf_counter() - started
        await sub.unsubscribe()
    latencies = sorted((seen[r] - posted[r]) * 1000 for r in seen if r in posted)
    mode = "one_at_a_time" if concurrency == 1 else "burst"
    return {
        "figure": f"monitor_webhook_to_failure_detected_ms_{mode}",
        "webhooks": count,
        "detected": len(latencies),
        "concurrency": concurrency,
        "p50_ms": round(statistics.median(latencies), 1) if latencies else None,
        "p99_ms": round(latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))], 1)
        if latencies
        else None,
        "failures_per_second": round(len(latencies) / elapsed, 1) if elapsed else None,
        "note": "signed POST to FailureDetected on the stream; includes the jobs, log and history requests "
        "to the sandbox GitHub over local HTTP, served in the same process and event loop as the monitor",
    }


async def idle_polling_cost(nats_url: str, repositories: int, intervals: int) -> dict[str, Any]:
    """Poll idle repositories with a short interval; count what GitHub would charge after warm-up."""
    interval = 0.25
    sandbox = create_sandbox_github(webhook_url=None, webhook_secret=SECRET)
    names = tuple(f"bench-idle/repo-{i}" for i in range(repositories))
    for name in names:
        sandbox.add_passed_run(name)
    async with _monitor(
        nats_url, sandbox, poll_repositories=names, polling_interval_minutes=interval / 60
    ) as (_, service, _, _):
        poller = service.poller
        assert poller is not None
        while poller.stats["polled"] < repositories:  # noqa: ASYNC110 - a counter, nothing to await
            await asyncio.sleep(0.02)
        charged_at_warm = sandbox.budget.windows[TOKEN].used
        polls_at_warm = poller.stats["polled"]
        await asyncio.sleep(interval * intervals)
        charged = sandbox.budget.windows[TOKEN].used - charged_at_warm
        polls = poller.stats["polled"] - polls_at_warm
    per_poll = charged / polls if polls else 0.0
    per_hour = per_poll * 3600 / DEFAULT_INTERVAL_SECONDS
    return {
        "figure": "monitor_idle_poll_requests_per_repo_per_hour",
        "value": round(per_hour, 3),
        "repositories": repositories,
        "polls_after_warmup": polls,
        "charged_requests_after_warmup": charged,
        "warmup_requests": charged_at_warm,
        "note": f"{repositories} idle repositories polled every {interval}s; the charged requests per poll "
        f"are extrapolated to {3600 / DEFAULT_INTERVAL_SECONDS:.0f} polls/hour at the default 5-minute "
        "interval (the first poll of each repository, without an ETag, is warm-up and costs 1 request)",
    }


def _percentile(ordered: list[float], fraction: float) -> float:
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


async def _main() -> None:
    url = os.environ.get("NATS_URL")
    if url is None:
        print("set NATS_URL (or run through `python -m tests.bench`)", file=sys.stderr)
        raise SystemExit(2)
    for figure in await run(url):
        print(json.dumps(figure))


if __name__ == "__main__":
    asyncio.run(_main())
