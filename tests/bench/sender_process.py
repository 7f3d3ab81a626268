"""The bench's webhook sender, in a process of its own.

Posting a webhook costs the client CPU too (httpx builds and parses every request); in the
services' process that CPU was counted as the system's (about 9% of its profile). Here the
sender reads the deliveries the sandbox GitHub prepared, signs them all before it starts,
says ``ready`` on stdout, waits for ``go`` on stdin, sends, and prints one JSON line: when
each failure's POST began, on ``time.monotonic()`` (to time its response) and on
``time.time()`` (the clock nats-server stamps each stored message with, one for every
process on the machine, so the bench compares it with the stored time of each event), when
its response came, how late the sender was against its schedule, the POSTs that failed, and
its CPU seconds.

Two ways to send:

- ``burst N``: everything at once, at most N requests in flight (a backlog for throughput);
- ``steady RATE``: open loop, one POST every 1/RATE s on a fixed schedule; a POST never waits
  for the previous one, so a slow system shows as latency, not as a slower sender. If the
  sender itself falls behind (a busy machine), its lateness and achieved rate say so.

    python -m tests.bench.sender_process URL DELIVERIES_FILE (burst N | steady RATE)
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from medic.services.monitor.signature import sign
from tests.pipeline import WEBHOOK_SECRET


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _signed(delivery: dict[str, str]) -> tuple[str, bytes, dict[str, str]]:
    body = delivery["body"].encode()
    headers = {
        "X-GitHub-Event": "workflow_run",
        "X-GitHub-Delivery": delivery["guid"],
        "X-Hub-Signature-256": sign(body, WEBHOOK_SECRET),
        "Content-Type": "application/json",
    }
    return delivery["failure_id"], body, headers


async def send(url: str, deliveries: list[dict[str, str]], mode: str, value: float) -> dict[str, Any]:
    requests = [_signed(d) for d in deliveries]
    sent: dict[str, float] = {}
    sent_wall: dict[str, float] = {}
    answered: dict[str, float] = {}
    lateness: list[float] = []
    errors: list[str] = []
    limits = httpx.Limits(max_connections=256, max_keepalive_connections=256)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:

        async def post(failure_id: str, body: bytes, headers: dict[str, str]) -> None:
            sent_wall[failure_id] = time.time()  # the clock JetStream stamps stored messages with
            sent[failure_id] = time.monotonic()
            try:
                response = await client.post(url, content=body, headers=headers)
                answered[failure_id] = time.monotonic()
                if response.status_code >= 300:
                    errors.append(f"{response.status_code}")
            except httpx.HTTPError as exc:
                errors.append(type(exc).__name__)

        print("ready", flush=True)
        if (await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)).strip() != "go":
            raise SystemExit("no go")
        cpu_before = _cpu_seconds()
        began = time.monotonic()
        if mode == "burst":
            gate = asyncio.Semaphore(int(value))

            async def gated(request: tuple[str, bytes, dict[str, str]]) -> None:
                async with gate:
                    await post(*request)

            await asyncio.gather(*(gated(r) for r in requests))
        elif mode == "steady":
            tasks = []
            start = began + 0.01
            for index, request in enumerate(requests):
                due = start + index / value
                delay = due - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                lateness.append(max(0.0, time.monotonic() - due))
                tasks.append(asyncio.create_task(post(*request)))
            await asyncio.gather(*tasks)
        else:
            raise SystemExit(f"unknown mode {mode!r}")
        finished = time.monotonic()
    starts = sorted(sent.values())
    span = starts[-1] - starts[0] if len(starts) > 1 else 0.0
    return {
        "sent": sent,
        "sent_wall": sent_wall,
        "answered": answered,
        "began": began,
        "finished": finished,
        "achieved_rate": (len(starts) - 1) / span if span > 0 else None,
        "lateness_max_s": max(lateness, default=0.0),
        "lateness_p99_s": sorted(lateness)[round(0.99 * (len(lateness) - 1))] if lateness else 0.0,
        "errors": errors,
        "cpu_s": _cpu_seconds() - cpu_before,
    }


if __name__ == "__main__":
    url, deliveries_file, mode, value = sys.argv[1:5]
    loaded = [json.loads(line) for line in Path(deliveries_file).read_text(encoding="utf-8").splitlines()]
    print(json.dumps(asyncio.run(send(url, loaded, mode, float(value)))), flush=True)
