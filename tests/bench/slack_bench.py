"""Slack figures: notices per second the notifier sustains against the sandbox Slack under
per-channel pacing, and how long a click takes to become ApprovalGranted on the bus.

Notices: failures spread over several channels (one per repository), each told as a thread
(parent, replies, parent edits); the figure is Slack calls (chat.postMessage + chat.update)
per second from the first publish to the last thread settled, beside the pacing ceiling
(channels x messages per second per channel). Clicks: each a signed ``block_actions`` request
to ``/slack/events`` (Bolt verifies it, the desk decides and publishes before acknowledging);
the latency ends when ApprovalGranted arrives on an ordered consumer.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import httpx

from medic.bus import Bus, Topology
from medic.config import load_settings
from medic.events import GateOutcome, decode_event
from medic.runtime import HttpServer, ServiceHost
from medic.sandbox.slack import deliver, serve_sandbox_slack
from medic.sandbox.slack_interactions import block_actions
from medic.sandbox.slack_workspace import Message
from medic.services.approval.records import approval_id_for
from medic.services.approval.service import ApprovalService
from medic.services.notifier.service import NotifierService
from medic.slack.actions import APPROVE_ACTION
from medic.slack.client import SlackClient
from medic.slack.pacing import ChannelPacer
from tests.slack_events import story


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _topology() -> Topology:
    token = uuid.uuid4().hex[:10]
    return Topology(stream=f"BENCH_SLACK_{token}", prefix=f"bs{token}")


async def notices_per_second(
    nats_url: str, *, failures: int, channels: int, per_second: float
) -> dict[str, Any]:
    bus = await Bus.connect(nats_url, _topology())
    repos = [f"bench-org/repo-{n}" for n in range(channels)]
    async with serve_sandbox_slack() as slack:
        settings = load_settings(
            slack_bot_token=slack.slack.token,
            slack_api_url=slack.api_url,
            slack_messages_per_second=per_second,
            slack_channels={"default": "#bench"},  # no critical/approvals pointers: threads only
            repository_configs={repo: {"slack_channel": f"#bench-{n}"} for n, repo in enumerate(repos)},
        )
        client = SlackClient(
            token=slack.slack.token, base_url=slack.api_url, pacer=ChannelPacer(per_second=per_second)
        )
        host = ServiceHost(
            settings=settings,
            bus=bus,
            services=[NotifierService(settings=settings, bus=bus, slack=client, write=lambda line: None)],
        )
        await host.start()
        stories = [
            story(run_id=n, outcome=GateOutcome.NO_ACTION, repository=repos[n % channels])
            for n in range(failures)
        ]
        started = time.perf_counter()
        for events in stories:
            for event in events:
                await bus.publish(event)
        async with httpx.AsyncClient(base_url=slack.base_url, timeout=30) as http:
            while True:
                settled = 0
                for n in range(channels):
                    parents = (await http.get("/_sandbox/history", params={"channel": f"#bench-{n}"})).json()
                    settled += sum(
                        1 for p in parents if len(p["replies"]) == 3 and "no automatic fix" in p["text"]
                    )
                if settled >= failures:
                    break
                await asyncio.sleep(0.2)
        elapsed = time.perf_counter() - started
        calls = sum(1 for r in slack.slack.requests if r["method"] in ("chat.postMessage", "chat.update"))
        await host.stop()
    await bus.js.delete_stream(bus.topology.stream)
    await bus.close()
    return {
        "figure": "slack_notices_per_second",
        "value": round(calls / elapsed, 2),
        "unit": "Slack messages/s",
        "ceiling": channels * per_second,
        "failures": failures,
        "channels": channels,
        "calls": calls,
        "seconds": round(elapsed, 2),
        "note": f"{per_second:g} message/s per channel; ceiling = channels x that",
    }


async def click_to_granted(nats_url: str, *, clicks: int) -> list[dict[str, Any]]:
    bus = await Bus.connect(nats_url, _topology())
    async with serve_sandbox_slack() as slack:
        settings = load_settings(
            slack_bot_token=slack.slack.token,
            slack_signing_secret=slack.slack.signing_secret,
            slack_api_url=slack.api_url,
            approvers=("U0ALICE001",),
        )
        client = SlackClient(
            token=slack.slack.token, base_url=slack.api_url, pacer=ChannelPacer(per_second=1000)
        )
        host = ServiceHost(
            settings=settings, bus=bus, services=[ApprovalService(settings=settings, bus=bus, slack=client)]
        )
        server = HttpServer(host.app())
        await server.start()
        await host.start()
        slack.slack.events_url = f"{server.url}/slack/events"
        arrived: dict[str, float] = {}
        granted: dict[str, asyncio.Event] = {}
        requested: set[str] = set()
        all_requested = asyncio.Event()

        async def on_message(msg: Any) -> None:
            event = decode_event(msg.data)
            approval_id = str(getattr(event.payload, "approval_id", ""))
            if event.event_type == "ApprovalGranted":
                arrived[approval_id] = time.perf_counter()
                granted.setdefault(approval_id, asyncio.Event()).set()
            elif event.event_type == "ApprovalRequested":
                requested.add(approval_id)
                if len(requested) >= clicks:
                    all_requested.set()

        sub = await bus.js.subscribe(bus.topology.events_wildcard, cb=on_message, ordered_consumer=True)
        gates = [story(run_id=10_000 + n, outcome=GateOutcome.REQUIRE_APPROVAL)[2] for n in range(clicks)]
        for gate in gates:
            await bus.publish(gate)
        ids = [approval_id_for(gate.event_id) for gate in gates]
        await asyncio.wait_for(all_requested.wait(), 60)
        channel = slack.slack.workspace.channel("#bench", create=True)
        assert channel is not None
        latencies: list[float] = []
        for n, approval_id in enumerate(ids):
            button = {"type": "button", "action_id": APPROVE_ACTION, "value": approval_id,
                      "text": {"type": "plain_text", "text": "Approve"}}  # fmt: skip
            card = Message(channel=channel.id, ts=f"1700000000.{n:06d}", text="card", blocks=[])
            payload = block_actions(
                slack.slack.workspace, card, channel_name="bench", user_id="U0ALICE001", block_id="b",
                button=button, trigger_id=f"T{n}.bench", base_url="http://bench",
            )  # fmt: skip
            started = time.perf_counter()
            answer = await deliver(slack.slack, payload)
            assert answer.status_code == 200, answer.text
            await asyncio.wait_for(granted.setdefault(approval_id, asyncio.Event()).wait(), 30)
            latencies.append(arrived[approval_id] - started)
        await sub.unsubscribe()
        await host.stop()
        await server.stop()
    await bus.js.delete_stream(bus.topology.stream)
    await bus.close()
    ms = [s * 1000 for s in latencies]
    common = {
        "unit": "ms",
        "clicks": clicks,
        "note": "signed block_actions POST -> ApprovalGranted on the bus",
    }
    return [
        {"figure": "slack_click_to_granted_p50", "value": round(_percentile(ms, 0.5), 2), **common},
        {"figure": "slack_click_to_granted_p99", "value": round(_percentile(ms, 0.99), 2), **common},
    ]


async def run(
    nats_url: str, *, failures: int = 24, channels: int = 8, clicks: int = 100
) -> list[dict[str, Any]]:
    notices = await notices_per_second(nats_url, failures=failures, channels=channels, per_second=1.0)
    return [notices, *await click_to_granted(nats_url, clicks=clicks)]
