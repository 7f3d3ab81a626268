"""Approvals in Slack on a real bus, over real HTTP: the sandbox Slack shows the card and
presses its buttons with requests signed like Slack's; Bolt verifies them; the desk decides.

Only configured approvers may act (others get an ephemeral refusal, audited, no decision);
concurrent clicks make one decision; critical risk needs two people; Reject asks why in a
modal; expiry replaces the buttons; the web API obeys the same approvers.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from medic.bus import Bus
from medic.config import load_settings
from medic.events import Envelope, GateOutcome, decode_event
from medic.runtime import HttpServer, ServiceHost
from medic.sandbox.slack import RunningSlack, serve_sandbox_slack
from medic.services.approval.service import ApprovalService
from medic.services.notifier.service import NotifierService
from medic.slack.actions import APPROVE_ACTION, REASON_BLOCK, REASON_INPUT, REJECT_ACTION
from medic.slack.client import SlackClient
from medic.slack.pacing import ChannelPacer
from tests.slack_events import story

ALICE, BOB, MALLORY = "U0ALICE001", "U0BOB00002", "U0MALLORY3"
TEAM = "T0SANDBOX1"


def principal(user: str) -> str:
    """A Slack user as the approval records them: an identity like ``token:alice`` (medic.access)."""
    return f"slack:{TEAM}/{user}"


CHANNEL = "#ci-medic"


@dataclass
class Desk:
    bus: Bus
    slack: RunningSlack
    url: str
    http: httpx.AsyncClient

    async def post(self, path: str, **body: Any) -> dict[str, Any]:
        answer = await self.http.post(f"{self.slack.base_url}/_sandbox{path}", json=body)
        assert answer.status_code in (200, 404), answer.text
        return {"http": answer.status_code, **answer.json()}

    async def history(self, channel: str = CHANNEL) -> list[dict[str, Any]]:
        return list(
            (
                await self.http.get(f"{self.slack.base_url}/_sandbox/history", params={"channel": channel})
            ).json()
        )

    async def card(self) -> dict[str, Any]:
        """The approval card: the thread reply that has (or had) the Approve/Reject buttons."""
        for parent in await self.history():
            for message in parent["replies"]:
                if message["blocks"] and message["blocks"][0]["text"]["text"].startswith(":raised_hand:"):
                    return dict(message)
        raise LookupError("no approval card yet")

    async def click(self, user: str, action: str = APPROVE_ACTION, **extra: Any) -> dict[str, Any]:
        card = await self.card()
        return await self.post(
            "/click", channel=card["channel"], ts=card["ts"], action_id=action, user=user, **extra
        )

    async def count(self, event_type: str) -> int:
        subject = self.bus.topology.subject(event_type)
        info = await self.bus.js.stream_info(self.bus.topology.stream, subjects_filter=subject)
        return int((info.state.subjects or {}).get(subject, 0))

    async def last(self, event_type: str) -> Any:
        msg = await self.bus.js.get_last_msg(self.bus.topology.stream, self.bus.topology.subject(event_type))
        assert msg.data is not None
        return decode_event(msg.data)

    async def ephemeral(self, user: str) -> list[str]:
        answer = await self.http.get(f"{self.slack.base_url}/_sandbox/ephemeral")
        return [e["text"] for e in answer.json() if e["user"] == user]


StartDesk = Callable[..., Awaitable[Desk]]


async def eventually(check: Callable[[], Awaitable[bool]], *, within: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while loop.time() < deadline:
        with contextlib.suppress(LookupError):
            if await check():
                return
        await asyncio.sleep(0.1)
    raise AssertionError("not reached in time")


@pytest.fixture
async def start_desk(bus: Bus) -> AsyncIterator[StartDesk]:
    stack = contextlib.AsyncExitStack()

    async def start(*, risk: int = 5, run_id: int = 1, sweep_seconds: float = 5.0, **overrides: Any) -> Desk:
        slack = await stack.enter_async_context(serve_sandbox_slack())
        settings = load_settings(
            slack_bot_token=slack.slack.token,
            slack_signing_secret=slack.slack.signing_secret,
            slack_api_url=slack.api_url,
            **{"approvers": (ALICE, BOB), **overrides},
        )
        client = SlackClient(
            token=slack.slack.token, base_url=slack.api_url, pacer=ChannelPacer(per_second=50)
        )
        services = [
            ApprovalService(settings=settings, bus=bus, slack=client, sweep_seconds=sweep_seconds),
            NotifierService(settings=settings, bus=bus, slack=client, write=lambda line: None),
        ]
        host = ServiceHost(settings=settings, bus=bus, services=services)
        server = HttpServer(host.app())
        await server.start()
        stack.push_async_callback(server.stop)
        slack.slack.events_url = f"{server.url}/slack/events"
        await host.start()
        stack.push_async_callback(host.stop)
        http = await stack.enter_async_context(httpx.AsyncClient(timeout=10))
        desk = Desk(bus, slack, server.url, http)
        events: list[Envelope] = story(run_id=run_id, outcome=GateOutcome.REQUIRE_APPROVAL, risk=risk)[:3]
        for event in events:
            await bus.publish(event)
        await eventually(lambda: _has_buttons(desk))
        return desk

    yield start
    await stack.aclose()
    for bucket in ("approvals", "slack_threads"):
        with contextlib.suppress(Exception):
            await bus.js.delete_key_value(f"{bus.topology.stream}_{bucket}")


async def _has_buttons(desk: Desk) -> bool:
    return any(b["type"] == "actions" for b in (await desk.card())["blocks"])


def shown(message: dict[str, Any]) -> str:
    return str(message["blocks"])


async def test_a_non_approver_is_refused_in_private_and_audited_then_an_approver_grants(
    start_desk: StartDesk,
) -> None:
    desk = await start_desk()
    refused = await desk.click(MALLORY)
    assert refused["status"] == 200  # acknowledged to Slack; nothing decided
    await eventually(lambda: _count_is(desk, "ApprovalAttemptRefused", 1))
    assert await desk.count("ApprovalGranted") == 0
    assert any("may not decide" in text for text in await desk.ephemeral(MALLORY))
    attempt = await desk.last("ApprovalAttemptRefused")
    assert (attempt.payload.who, attempt.payload.via) == (principal(MALLORY), "slack")
    assert await _has_buttons(desk)

    assert (await desk.click(ALICE))["status"] == 200
    assert await desk.count("ApprovalGranted") == 1  # on the bus before Slack got its answer
    granted = await desk.last("ApprovalGranted")
    assert granted.payload.approver == principal(ALICE)
    await eventually(lambda: _card_says(desk, f"Approved by <@{ALICE}>"))
    assert not await _has_buttons(desk)
    assert (await desk.click(BOB))["http"] == 404  # the buttons are gone


async def _count_is(desk: Desk, event_type: str, n: int) -> bool:
    return await desk.count(event_type) == n


async def _card_says(desk: Desk, text: str) -> bool:
    return text in shown(await desk.card())


async def test_forged_and_stale_requests_are_refused_and_change_nothing(start_desk: StartDesk) -> None:
    desk = await start_desk()
    assert (await desk.click(ALICE, forge=True))["status"] == 401
    assert (await desk.click(ALICE, age_seconds=600))["status"] == 401
    raw = await desk.http.post(f"{desk.url}/slack/events", content=b"payload=%7B%7D")
    assert raw.status_code == 401
    # no sleep: Bolt runs with process_before_response, so each answer above came after all
    # its handler did; had a refused request recorded anything, it would be on the log now
    assert await desk.count("ApprovalGranted") == 0 and await desk.count("ApprovalAttemptRefused") == 0
    assert await _has_buttons(desk)


async def test_concurrent_and_repeated_clicks_make_one_decision(start_desk: StartDesk) -> None:
    desk = await start_desk()
    answers = await asyncio.gather(*(desk.click(user) for user in (ALICE, ALICE, BOB, ALICE, BOB)))
    assert all(a["status"] == 200 for a in answers if a["http"] == 200)
    # every click has been answered, and each answer follows its decision's publish
    assert await desk.count("ApprovalGranted") == 1
    told = await desk.ephemeral(ALICE) + await desk.ephemeral(BOB)
    assert sum("Done: granted" in t for t in told) == 1
    assert sum("Nothing changed" in t for t in told) == len(told) - 1


async def test_critical_risk_needs_two_different_approvers(start_desk: StartDesk) -> None:
    desk = await start_desk(risk=9)
    await desk.click(ALICE)
    assert await desk.count("ApprovalPartiallyGranted") == 1 and await desk.count("ApprovalGranted") == 0
    await eventually(lambda: _card_says(desk, f"Approved so far by <@{ALICE}>"))
    await desk.click(ALICE)
    assert await desk.count("ApprovalGranted") == 0
    assert any("different approver" in t for t in await desk.ephemeral(ALICE))
    await desk.click(BOB)
    assert await desk.count("ApprovalGranted") == 1
    granted = await desk.last("ApprovalGranted")
    assert granted.payload.approver == principal(BOB)
    critical = await desk.history("#ci-medic-critical")
    assert len(critical) == 1


async def test_reject_asks_why_in_a_modal_and_a_non_approver_gets_no_modal(start_desk: StartDesk) -> None:
    desk = await start_desk()
    await desk.click(MALLORY, REJECT_ACTION)
    assert (await desk.http.get(f"{desk.slack.base_url}/_sandbox/views")).json() == []
    assert await desk.count("ApprovalAttemptRefused") == 1
    await desk.click(BOB, REJECT_ACTION)
    (view,) = (await desk.http.get(f"{desk.slack.base_url}/_sandbox/views")).json()
    submitted = await desk.post(
        "/submit", view_id=view["id"], values={REASON_BLOCK: {REASON_INPUT: "<!channel> not on a Friday"}}
    )
    assert submitted["status"] == 200
    rejected = await desk.last("ApprovalRejected")
    assert rejected.payload.reason == "<!channel> not on a Friday"
    await eventually(lambda: _card_says(desk, f"Rejected by <@{BOB}>: &lt;!channel&gt; not on a Friday"))
    assert not await _has_buttons(desk)


async def test_expiry_replaces_the_buttons(start_desk: StartDesk) -> None:
    desk = await start_desk(approval_timeout_hours=2 / 3600, sweep_seconds=0.2)
    await eventually(lambda: _count_is(desk, "ApprovalExpired", 1))
    await eventually(lambda: _card_says(desk, "Expired"))
    assert not await _has_buttons(desk)
    parent = (await desk.history())[0]
    assert "approval expired" in parent["text"]


async def test_the_web_api_and_user_groups_obey_the_same_approvers(start_desk: StartDesk) -> None:
    desk = await start_desk(approvers=("S0SRELEADS", "carol"))
    approval_id = (await desk.card())["blocks"][-1]["elements"][0]["value"]
    base = f"{desk.url}/api/approvals/{approval_id}"
    assert (await desk.http.post(f"{base}/approve", json={"approver": "eve"})).status_code == 403
    # a typed Slack identity is an unverified name, never the Slack user
    assert (await desk.http.post(f"{base}/approve", json={"approver": principal(BOB)})).status_code == 403
    assert (await desk.http.post(f"{base}/approve", json={"approver": BOB})).status_code == 403
    assert await desk.count("ApprovalAttemptRefused") == 3
    assert (await desk.last("ApprovalAttemptRefused")).payload.who == f"unverified:{BOB}"
    await desk.click(MALLORY)
    assert await desk.count("ApprovalAttemptRefused") == 4
    await desk.click(BOB)  # a member of the user group S0SRELEADS
    assert await desk.count("ApprovalGranted") == 1
    assert (await desk.last("ApprovalGranted")).payload.approver == principal(BOB)
    # carol is an approver (by name): she passes the check and meets the decision already made
    assert (await desk.http.post(f"{base}/approve", json={"approver": "carol"})).status_code == 409
    assert await desk.count("ApprovalAttemptRefused") == 4


async def test_the_cli_obeys_the_same_rules_and_four_eyes_spans_cli_and_slack(start_desk: StartDesk) -> None:
    from typer.testing import CliRunner

    from medic.services.cli import app

    desk = await start_desk(risk=9, approvers=(ALICE, "carol"))
    approval_id = (await desk.card())["blocks"][-1]["elements"][0]["value"]
    runner = CliRunner()

    def medic(*args: str) -> Any:
        return runner.invoke(app, [*args, approval_id, "--url", desk.url])

    refused = await asyncio.to_thread(medic, "approve", "--as", "eve")
    assert refused.exit_code == 1
    attempt = await desk.last("ApprovalAttemptRefused")
    assert (attempt.payload.who, attempt.payload.via) == ("unverified:eve", "cli")
    first = await asyncio.to_thread(medic, "approve", "--as", "carol")
    assert first.exit_code == 0 and "1 more approver" in first.stdout
    assert (await asyncio.to_thread(medic, "approve", "--as", "carol")).exit_code == 1  # not twice
    await desk.click(ALICE)
    assert await desk.count("ApprovalGranted") == 1
    assert (await asyncio.to_thread(medic, "reject", "--as", "carol")).exit_code == 1  # already decided
    unreachable = runner.invoke(app, ["approve", approval_id, "--url", "http://127.0.0.1:9"])
    assert unreachable.exit_code == 2
    assert runner.invoke(app, ["approve", "../../x", "--url", desk.url]).exit_code == 1


async def test_with_verified_identities_slack_clicks_and_personal_tokens_both_decide(
    start_desk: StartDesk,
) -> None:
    """Identities are enforced (``api_tokens``): Slack's signature still admits the click, and a
    person's token (``token:carol``) is an approver by name, as a Slack user id is by id."""
    desk = await start_desk(
        risk=9, approvers=(ALICE, "carol"), api_tokens={"carol": {"token": "carol-secret"}}
    )
    approval_id = (await desk.card())["blocks"][-1]["elements"][0]["value"]
    base = f"{desk.url}/api/approvals/{approval_id}"
    assert (await desk.http.post(f"{base}/approve", json={"approver": "carol"})).status_code == 401
    await desk.click(ALICE)
    assert await desk.count("ApprovalPartiallyGranted") == 1
    answer = await desk.http.post(
        f"{base}/approve", json={}, headers={"Authorization": "Bearer carol-secret"}
    )
    assert answer.status_code == 200, answer.text
    granted = await desk.last("ApprovalGranted")
    assert granted.payload.approver == "token:carol"


async def test_socket_mode_needs_no_signing_secret_and_serves_no_request_url(bus: Bus) -> None:
    settings = load_settings(
        slack_bot_token="xoxb-x", slack_app_token="xapp-x", slack_api_url="http://127.0.0.1:9/api/"
    )
    client = SlackClient(token="xoxb-x", base_url=settings.slack_api_url)
    service = ApprovalService(settings=settings, bus=bus, slack=client)
    assert service.slack_approvals is not None and not service.slack_approvals.http_mode
    assert await _post_events(service) == 404  # no request URL in Socket Mode
    signed = load_settings(slack_bot_token="xoxb-x", slack_signing_secret="s")
    assert await _post_events(ApprovalService(settings=signed, bus=bus, slack=client)) == 401  # unsigned


async def _post_events(service: ApprovalService) -> int:
    from fastapi import FastAPI

    from medic.runtime import HttpServer

    app = FastAPI()
    app.include_router(service.router())
    server = HttpServer(app)  # a real socket, as Slack reaches the route
    await server.start()
    try:
        async with httpx.AsyncClient(base_url=server.url) as http:
            return (await http.post("/slack/events", content=b"payload=%7B%7D")).status_code
    finally:
        await server.stop()
