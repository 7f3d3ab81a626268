"""Hostile and malformed requests to ``POST /slack/events``: correctly signed garbage, unknown
approvals, missing people, oversized reasons. Nothing crashes (no 5xx), nothing is decided."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from medic.bus import Bus
from medic.config import load_settings
from medic.runtime import HttpServer, ServiceHost
from medic.sandbox.slack import RunningSlack, serve_sandbox_slack
from medic.services.approval.service import ApprovalService
from medic.slack.actions import APPROVE_ACTION, REJECT_MODAL
from medic.slack.client import SlackClient
from medic.slack.signing import signed_headers


@pytest.fixture
async def events_url(bus: Bus) -> AsyncIterator[tuple[str, RunningSlack]]:
    async with serve_sandbox_slack() as slack:
        settings = load_settings(
            slack_bot_token=slack.slack.token,
            slack_signing_secret=slack.slack.signing_secret,
            slack_api_url=slack.api_url,
            approvers=("U0ALICE001",),
        )
        client = SlackClient(token=slack.slack.token, base_url=slack.api_url)
        host = ServiceHost(
            settings=settings, bus=bus, services=[ApprovalService(settings=settings, bus=bus, slack=client)]
        )
        server = HttpServer(host.app())
        await server.start()
        await host.start()
        try:
            yield f"{server.url}/slack/events", slack
        finally:
            await host.stop()
            await server.stop()


def _action(value: Any, user: Any = "U0ALICE001") -> dict[str, Any]:
    return {
        "type": "block_actions",
        "user": {"id": user, "team_id": "T0SANDBOX1"},
        "team": {"id": "T0SANDBOX1"},
        "trigger_id": "T1.x",
        "container": {"type": "message", "channel_id": "C0NOWHERE1", "message_ts": "1.2"},
        "actions": [{"action_id": APPROVE_ACTION, "block_id": "b", "type": "button", "value": value}],
    }


HOSTILE: list[tuple[str, bytes]] = [
    ("not form", b"\xff\xfe\x00garbage"),
    ("payload not JSON", urlencode({"payload": "{not json"}).encode()),
    ("payload a list", urlencode({"payload": "[1,2]"}).encode()),
    ("unknown approval", urlencode({"payload": json.dumps(_action("../../etc/passwd"))}).encode()),
    ("value not a string", urlencode({"payload": json.dumps(_action({"$ne": 1}))}).encode()),
    ("no user id", urlencode({"payload": json.dumps(_action("x", user=None))}).encode()),
    ("user id a number", urlencode({"payload": json.dumps(_action("x", user=12))}).encode()),
    (
        "actions not a list",
        urlencode({"payload": json.dumps({**_action("x"), "actions": "approve"})}).encode(),
    ),
    ("huge value", urlencode({"payload": json.dumps(_action("a" * 200_000))}).encode()),
    (
        "modal without metadata",
        urlencode(
            {
                "payload": json.dumps(
                    {
                        "type": "view_submission",
                        "user": {"id": "U0ALICE001"},
                        "view": {"callback_id": REJECT_MODAL, "private_metadata": "{{{"},
                    }
                )
            }
        ).encode(),
    ),
]


@pytest.mark.parametrize(("name", "body"), HOSTILE, ids=[n for n, _ in HOSTILE])
async def test_signed_garbage_is_answered_without_a_crash_and_decides_nothing(
    bus: Bus, events_url: tuple[str, RunningSlack], name: str, body: bytes
) -> None:
    url, slack = events_url
    headers = signed_headers(
        slack.slack.signing_secret, int(time.time()), body, "application/x-www-form-urlencoded"
    )
    async with httpx.AsyncClient(timeout=10) as http:
        answer = await http.post(url, content=body, headers=headers)
    assert answer.status_code < 500, f"{name}: {answer.status_code} {answer.text[:200]}"
    info = await bus.js.stream_info(bus.topology.stream)
    assert info.state.messages == 0, f"{name} published something"
