"""The notifier on a real bus against the sandbox Slack over HTTP: one thread per failure.

One parent per failure (also across a restart and a second replica), a reply per stage in
order, the parent edited to the failure's state, nothing lost or doubled through 429 storms
and 5xx answers, outside text escaped, critical failures pointed to from the critical channel.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest

from medic.bus import Bus
from medic.config import Settings, load_settings
from medic.events import Category, Envelope, GateOutcome
from medic.runtime import ServiceHost
from medic.sandbox.slack import RunningSlack, serve_sandbox_slack
from medic.services.notifier.blocks import reply
from medic.services.notifier.facts import Facts
from medic.services.notifier.service import NotifierService
from medic.services.notifier.teller import ThreadTeller
from medic.services.notifier.threads import ThreadStore
from medic.slack.client import SlackClient
from medic.slack.pacing import ChannelPacer
from tests.slack_events import story
from tests.waiting import wait_until_caught_up

CHANNEL = "#ci-medic"
StartNotifier = Callable[..., Awaitable[ServiceHost]]


@pytest.fixture
async def slack() -> AsyncIterator[RunningSlack]:
    async with serve_sandbox_slack() as running:
        yield running


@pytest.fixture
async def start_notifier(bus: Bus, slack: RunningSlack) -> AsyncIterator[StartNotifier]:
    hosts: list[ServiceHost] = []

    async def start(**overrides: Any) -> ServiceHost:
        settings = notifier_settings(slack, **overrides)
        client = SlackClient(
            token=slack.slack.token, base_url=slack.api_url, pacer=ChannelPacer(per_second=50)
        )
        service = NotifierService(settings=settings, bus=bus, slack=client, write=lambda line: None)
        host = ServiceHost(settings=settings, bus=bus, services=[service])
        await host.start()
        hosts.append(host)
        return host

    yield start
    for host in hosts:
        with contextlib.suppress(Exception):
            await host.stop()
    with contextlib.suppress(Exception):
        await bus.js.delete_key_value(f"{bus.topology.stream}_slack_threads")


def notifier_settings(slack: RunningSlack, **overrides: Any) -> Settings:
    return load_settings(
        slack_bot_token=slack.slack.token,
        slack_api_url=slack.api_url,
        public_url="https://medic.example",
        **overrides,
    )


async def history(slack: RunningSlack, channel: str = CHANNEL) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(base_url=slack.base_url) as http:
        return list((await http.get("/_sandbox/history", params={"channel": channel})).json())


async def wait_until(check: Callable[[], Awaitable[bool]], *, within: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while loop.time() < deadline:
        if await check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError("condition not reached in time")


async def publish(bus: Bus, events: list[Envelope]) -> None:
    for event in events:
        await bus.publish(event)


def reply_marks(parent: dict[str, Any]) -> list[str]:
    return [r["blocks"][0]["block_id"] for r in parent["replies"]]


def all_text(message: dict[str, Any]) -> str:
    return json.dumps({"text": message["text"], "blocks": message["blocks"]})


async def test_a_no_action_failure_gets_one_parent_and_a_reply_per_stage_in_order(
    bus: Bus, slack: RunningSlack, start_notifier: StartNotifier
) -> None:
    await start_notifier()
    events = story(run_id=1, outcome=GateOutcome.NO_ACTION)
    await publish(bus, events)

    async def told() -> bool:
        parents = await history(slack)
        return len(parents) == 1 and len(parents[0]["replies"]) == len(events) and "fix" in parents[0]["text"]

    await wait_until(told)
    (parent,) = await history(slack)
    assert reply_marks(parent) == [f"ev:{e.event_id}" for e in events]
    assert "no automatic fix" in parent["text"]
    last = all_text(parent["replies"][-1])
    assert "No automatic fix" in last and "error[E0308]: mismatched types" in last
    assert parent["edits"] >= 1


async def test_an_auto_fixed_failure_ends_fixed_and_risk_nine_is_pointed_to_from_critical(
    bus: Bus, slack: RunningSlack, start_notifier: StartNotifier
) -> None:
    await start_notifier()
    events = story(run_id=2, outcome=GateOutcome.AUTO_REMEDIATE, risk=9, category=Category.INFRASTRUCTURE)
    await publish(bus, events)

    async def fixed() -> bool:
        parents = await history(slack)
        return len(parents) == 1 and "fixed" in parents[0]["text"] and len(parents[0]["replies"]) == 5

    await wait_until(fixed)
    critical = await history(slack, "#ci-medic-critical")
    assert len(critical) == 1
    assert "risk 9/10" in critical[0]["text"] and "_sandbox/archives/" in all_text(critical[0])


async def test_a_restart_and_a_second_replica_keep_editing_the_same_thread(
    bus: Bus, slack: RunningSlack, start_notifier: StartNotifier
) -> None:
    first = await start_notifier()
    events = story(run_id=3, outcome=GateOutcome.AUTO_REMEDIATE)
    await publish(bus, events[:2])
    await wait_until(lambda: _replies_are(slack, 2))
    await first.stop()

    await start_notifier()
    await start_notifier()  # a second replica on the same durable consumer
    await publish(bus, events[2:])
    await wait_until(lambda: _replies_are(slack, len(events), "fixed"))
    for event in events:  # redelivered duplicates (a replay) tell nothing twice
        await bus.js.publish(bus.topology.subject(event.event_type), event.model_dump_json().encode())
    await wait_until_caught_up(bus, "notifier")  # every duplicate was handled: now nothing more comes
    (parent,) = await history(slack)
    assert reply_marks(parent) == [f"ev:{e.event_id}" for e in events]
    assert "fixed" in parent["text"]


async def _replies_are(slack: RunningSlack, n: int, state: str = "") -> bool:
    parents = await history(slack)
    assert len(parents) <= 1, "a second parent was posted"
    return len(parents) == 1 and len(parents[0]["replies"]) == n and state in parents[0]["text"]


async def test_a_storm_of_429s_and_some_5xx_lose_and_double_nothing(
    bus: Bus, slack: RunningSlack, start_notifier: StartNotifier
) -> None:
    slack.slack.modes.update(
        {"rate_limit": 25, "retry_after": 0.2, "methods": ["chat.postMessage", "chat.update"]}
    )
    await start_notifier()
    stories = [story(run_id=100 + n, outcome=GateOutcome.AUTO_REMEDIATE) for n in range(4)]
    for events in stories:
        await publish(bus, events)

    async def storm_begun() -> bool:
        return bool(slack.slack.modes.rate_limit < 25)

    await wait_until(storm_begun)  # some 429s served: now add the 5xx on top
    slack.slack.modes.update({"server_error": 3})

    async def all_told() -> bool:
        parents = await history(slack)
        return len(parents) == 4 and all(len(p["replies"]) == 5 and "fixed" in p["text"] for p in parents)

    await wait_until(all_told, within=25)
    assert slack.slack.modes.rate_limit == 0  # the storm really happened
    for parent in await history(slack):
        marks = reply_marks(parent)
        assert len(marks) == len(set(marks)) == 5


async def test_mrkdwn_injection_through_branch_and_commit_is_escaped(
    bus: Bus, slack: RunningSlack, start_notifier: StartNotifier
) -> None:
    await start_notifier()
    events = story(
        run_id=4,
        branch="<!channel>*boom*`x`",
        commit="<https://evil.example/approve|Approve now> <!here> <@U0ADMIN001>",
    )
    await publish(bus, events)
    await wait_until(lambda: _replies_are(slack, len(events), "no automatic fix"))
    (parent,) = await history(slack)
    for message in [parent, *parent["replies"]]:
        shown = all_text(message)
        for forbidden in ("<!channel>", "<!here>", "<https://evil", "<@U0ADMIN001>"):
            assert forbidden not in shown
    assert "&lt;!channel&gt;" in all_text(parent)


async def test_a_crash_between_posting_a_reply_and_recording_it_does_not_post_it_again(
    bus: Bus, slack: RunningSlack
) -> None:
    settings = notifier_settings(slack)
    client = SlackClient(token=slack.slack.token, base_url=slack.api_url, pacer=ChannelPacer(per_second=50))
    store = await ThreadStore.open(bus.js, bus.topology)
    teller = ThreadTeller(settings=settings, slack=client, store=store)
    detected, analysed, *_ = story(run_id=5)
    await teller.tell(detected)
    # the crash: the reply for `analysed` reached Slack, its record says only "telling"
    record = await store.mutate(
        detected.failure_id,
        lambda r: r.model_copy(update={"telling": (analysed.event_id,), "facts": r.facts.merge(analysed)}),
    )
    assert record.ts is not None
    told = reply(analysed, Facts(failure_id=detected.failure_id).merge(analysed))
    assert told is not None
    await client.post_message(record.channel, text=told[0], blocks=told[1], thread_ts=record.ts)

    await teller.tell(analysed)
    (parent,) = await history(slack)
    assert reply_marks(parent) == [f"ev:{detected.event_id}", f"ev:{analysed.event_id}"]
    found = await store.get(detected.failure_id)
    assert found is not None and analysed.event_id in found[0].told and not found[0].telling
