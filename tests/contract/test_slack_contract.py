"""The sandbox Slack and our Slack client both keep Slack's published Web API contract.

Every request :class:`SlackClient` sends names only parameters Slack declares for the method
(and every required one), and every sandbox answer validates against the method's success or
error schema in ``tests/contract/providers/slack/web-api.openapi-v2-subset.json`` (Swagger 2.0,
JSON Schema draft 4). The interactions the sandbox plays (button clicks, modal submissions)
have the shape of the real payloads copied beside it and are signed the documented way.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs

import httpx
import jsonschema
import pytest
from slack_sdk.signature import SignatureVerifier

from medic.sandbox.slack import RunningSlack, serve_sandbox_slack
from medic.sandbox.slack_interactions import block_actions, signed_form, view_submission
from medic.sandbox.slack_workspace import Message
from medic.slack.client import SlackClient
from medic.slack.errors import SlackError, SlackRateLimited, SlackUnavailable
from medic.slack.pacing import ChannelPacer
from medic.slack.signing import signature
from tests.contracts_dir import CONTRACTS

SLACK = CONTRACTS / "slack"
SPEC: dict[str, Any] = json.loads((SLACK / "web-api.openapi-v2-subset.json").read_text())
TOKEN = {"Authorization": "Bearer xoxb-medic-sandbox"}


def _operation(method: str) -> dict[str, Any]:
    item = SPEC["paths"][f"/{method}"]
    return dict(next(iter(item.values())))


def assert_answer_valid(method: str, body: dict[str, Any]) -> None:
    response = _operation(method)["responses"]["200" if body.get("ok") else "default"]
    schema = {"definitions": SPEC["definitions"], **response["schema"]}
    errors = list(jsonschema.Draft4Validator(schema).iter_errors(body))
    assert not errors, f"{method}: " + "; ".join(f"{list(e.absolute_path)}: {e.message}" for e in errors[:5])


def assert_request_valid(method: str, params: dict[str, Any], *, bearer: bool) -> None:
    declared = {p["name"]: p for p in _operation(method).get("parameters", [])}
    unknown = set(params) - set(declared)
    assert not unknown, f"{method} sent parameters Slack does not declare: {sorted(unknown)}"
    for name, parameter in declared.items():
        if parameter.get("required") and name != "token":
            assert name in params, f"{method} misses required parameter {name}"
    assert bearer or "token" in params, f"{method} sent no token"


@pytest.fixture
async def slack() -> AsyncIterator[RunningSlack]:
    async with serve_sandbox_slack() as running:
        yield running


@pytest.fixture
async def http(slack: RunningSlack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=slack.base_url, timeout=5) as client:
        yield client


def _client(slack: RunningSlack) -> SlackClient:
    return SlackClient(
        token="xoxb-medic-sandbox", base_url=slack.api_url, pacer=ChannelPacer(per_second=1000)
    )


async def test_every_request_the_client_sends_is_declared_by_slack(slack: RunningSlack) -> None:
    client = _client(slack)
    parent = await client.post_message("#ci-medic", text="parent", blocks=[{"type": "divider"}])
    await client.post_message(parent.channel, text="reply", thread_ts=parent.ts)
    await client.update_message(parent.channel, parent.ts, text="edited", blocks=[{"type": "divider"}])
    await client.post_ephemeral(parent.channel, "U0MALLORY3", text="not you", thread_ts=parent.ts)
    assert (await client.permalink(parent.channel, parent.ts)).startswith("http")
    assert [m["text"] for m in await client.thread_replies(parent.channel, parent.ts)] == ["edited", "reply"]
    assert (await client.user_info("U0ALICE001")).name == "alice"
    assert await client.usergroup_members("S0SRELEADS") == {"U0ALICE001", "U0BOB00002"}
    assert (await client.auth_test())["user_id"]
    slack.slack.workspace.triggers["T1.sandbox"] = {
        "user": "U0ALICE001",
        "channel": parent.channel,
        "ts": parent.ts,
    }
    await client.open_view("T1.sandbox", {"type": "modal", "title": {"type": "plain_text", "text": "Why?"}})

    sent = slack.slack.requests
    assert {r["method"] for r in sent} == {
        "chat.postMessage", "chat.update", "chat.postEphemeral", "chat.getPermalink",
        "users.info", "usergroups.users.list", "auth.test", "views.open", "conversations.replies",
    }  # fmt: skip
    for request in sent:
        assert_request_valid(request["method"], request["params"], bearer=request["bearer"])


SECTION = [{"type": "section", "text": {"type": "mrkdwn", "text": "*x*"}}]
CALLS: list[tuple[str, dict[str, Any]]] = [
    ("auth.test", {}),
    ("chat.postMessage", {"channel": "#ci-medic", "text": "hello"}),
    ("chat.postMessage", {"channel": "#ci-medic", "blocks": SECTION}),
    ("chat.postMessage", {"channel": "#ci-medic"}),
    ("chat.postMessage", {"channel": "", "text": "x"}),
    ("chat.update", {"channel": "C0000000000", "ts": "1700000000.000001", "text": "x"}),
    ("chat.postEphemeral", {"channel": "#ci-medic", "user": "U0NOBODY00", "text": "x"}),
    ("chat.postEphemeral", {"channel": "#ci-medic", "user": "U0ALICE001", "text": "x"}),
    ("chat.getPermalink", {"channel": "#nowhere", "message_ts": "1700000000.000001"}),
    ("users.info", {"user": "U0ALICE001"}),
    ("users.info", {"user": "U0NOBODY00"}),
    ("usergroups.users.list", {"usergroup": "S0SRELEADS"}),
    ("usergroups.users.list", {"usergroup": "S0UNKNOWN1"}),
]


@pytest.mark.parametrize(("method", "params"), CALLS, ids=[f"{m}-{i}" for i, (m, _) in enumerate(CALLS)])
async def test_sandbox_answers_match_slack_schemas(
    http: httpx.AsyncClient, method: str, params: dict[str, Any]
) -> None:
    answer = await http.post(f"/api/{method}", json=params, headers=TOKEN)
    assert answer.status_code == 200
    assert_answer_valid(method, answer.json())


async def test_update_and_permalink_answers_for_a_real_message_match(http: httpx.AsyncClient) -> None:
    posted = (
        await http.post("/api/chat.postMessage", json={"channel": "#a", "text": "p"}, headers=TOKEN)
    ).json()
    assert_answer_valid("chat.postMessage", posted)
    where = {"channel": posted["channel"], "ts": posted["ts"]}
    updated = (await http.post("/api/chat.update", json={**where, "text": "q"}, headers=TOKEN)).json()
    assert updated["ok"] is True
    assert_answer_valid("chat.update", updated)
    replies = (await http.get("/api/conversations.replies", params=where, headers=TOKEN)).json()
    assert [m["text"] for m in replies["messages"]] == ["q"]
    assert_answer_valid("conversations.replies", replies)
    link = (
        await http.get(
            "/api/chat.getPermalink",
            params={"channel": posted["channel"], "message_ts": posted["ts"]},
            headers=TOKEN,
        )
    ).json()
    assert link["ok"] is True
    assert_answer_valid("chat.getPermalink", link)


async def test_form_encoded_calls_and_token_in_params_work_like_json(http: httpx.AsyncClient) -> None:
    answer = await http.post(
        "/api/chat.postMessage",
        data={
            "token": "xoxb-medic-sandbox",
            "channel": "#f",
            "text": "form",
            "blocks": json.dumps([{"type": "divider"}]),
        },
    )
    body = answer.json()
    assert body["ok"] is True and body["message"]["blocks"] == [{"type": "divider"}]
    assert_answer_valid("chat.postMessage", body)


@pytest.mark.parametrize(
    ("headers", "error"),
    [({}, "not_authed"), ({"Authorization": "Bearer xoxb-wrong"}, "invalid_auth")],
)
async def test_missing_or_wrong_token_is_refused(
    http: httpx.AsyncClient, headers: dict[str, str], error: str
) -> None:
    body = (
        await http.post("/api/chat.postMessage", json={"channel": "#a", "text": "x"}, headers=headers)
    ).json()
    assert body == {"ok": False, "error": error}
    assert_answer_valid("chat.postMessage", body)


@pytest.mark.parametrize(
    "raw",
    [b"[1, 2]", b"{not json", b"\xff\xfe", b'{"channel": "#a", "blocks": "[{\\"no_type\\": 1}]"}'],
)
async def test_malformed_bodies_are_refused_not_crashed(http: httpx.AsyncClient, raw: bytes) -> None:
    answer = await http.post(
        "/api/chat.postMessage", content=raw, headers={**TOKEN, "Content-Type": "application/json"}
    )
    assert answer.status_code == 200
    assert answer.json()["ok"] is False


async def test_rate_limit_answers_429_with_retry_after_and_the_client_reports_it(
    slack: RunningSlack, http: httpx.AsyncClient
) -> None:
    await http.post("/_sandbox/modes", json={"rate_limit": 2, "retry_after": 3})
    raw = await http.post("/api/chat.postMessage", json={"channel": "#a", "text": "x"}, headers=TOKEN)
    assert raw.status_code == 429 and raw.headers["retry-after"] == "3"
    assert_answer_valid("chat.postMessage", raw.json())
    client = _client(slack)
    with pytest.raises(SlackRateLimited) as caught:
        await client.post_message("#a", text="x")
    assert caught.value.retry_after == 3.0
    assert client.pacer.wait_seconds("#a") > 2.0  # the channel is held for what Slack asked
    assert (await client.post_message("#b", text="other channels are free")).ts


async def test_server_errors_are_transient_and_refusals_are_not(
    slack: RunningSlack, http: httpx.AsyncClient
) -> None:
    client = _client(slack)
    await http.post("/_sandbox/modes", json={"server_error": 1})
    with pytest.raises(SlackUnavailable):
        await client.post_message("#a", text="x")
    with pytest.raises(SlackError) as refused:
        await client.update_message("C0000000000", "1700000000.000001", text="x")
    assert not isinstance(refused.value, SlackUnavailable | SlackRateLimited)
    enum = _operation("chat.update")["responses"]["default"]["schema"]["properties"]["error"]["enum"]
    assert refused.value.code in enum
    assert (await client.post_message("#a", text="after the outage")).ts


def test_the_documented_signature_example_is_reproduced() -> None:
    text = (SLACK / "request-signing.md").read_text()
    body = text.split("- body `", 1)[1].split("`", 1)[0].encode()
    expected = text.split("expected `X-Slack-Signature`: `", 1)[1].split("`", 1)[0]
    assert signature("8f742231b10e8888abcd99yyyzzz85a5", "1531420618", body) == expected


def _keys(node: Any, prefix: str = "") -> set[str]:
    if not isinstance(node, dict):
        return set()
    found = set()
    for key, value in node.items():
        path = f"{prefix}.{key}" if prefix else key
        found.add(path)
        if key not in {"blocks", "state", "values", "message"}:  # free-form Block Kit / user content
            found |= _keys(value, path)
    return found


def test_a_sandbox_click_has_the_shape_of_slack_block_actions_and_a_valid_signature() -> None:
    from medic.sandbox.slack_workspace import default_workspace

    workspace = default_workspace()
    message = Message(
        channel="C0ABCDEF12", ts="1700000000.000001", text="t", blocks=[], thread_ts="1690000000.000001"
    )
    button = {
        "type": "button",
        "action_id": "approve",
        "value": "abc",
        "text": {"type": "plain_text", "text": "Approve"},
    }
    payload = block_actions(
        workspace, message, channel_name="ci-medic", user_id="U0ALICE001", block_id="b",
        button=button, trigger_id="T1.x", base_url="http://s",
    )  # fmt: skip
    shape = json.loads((SLACK / "block_actions.all-fields-shape.json").read_text())
    example = json.loads((SLACK / "block_actions.payload.json").read_text())
    assert _keys(payload) <= _keys(shape) | {"message"}
    assert set(example) <= set(payload) | {"message"}
    in_thread = json.loads((SLACK / "block_actions.in-thread.payload.json").read_text())
    assert set(in_thread["container"]) == set(payload["container"])
    body, headers = signed_form(payload, "s3cret")
    verifier = SignatureVerifier("s3cret")
    assert verifier.is_valid(body, headers["X-Slack-Request-Timestamp"], headers["X-Slack-Signature"])
    assert not SignatureVerifier("other").is_valid(
        body, headers["X-Slack-Request-Timestamp"], headers["X-Slack-Signature"]
    )
    decoded = json.loads(parse_qs(body.decode())["payload"][0])
    assert decoded == payload


def test_a_sandbox_submission_has_the_shape_of_slack_view_submission() -> None:
    from medic.sandbox.slack_workspace import default_workspace

    example = json.loads((SLACK / "view_submission.payload.json").read_text())
    view = {k: v for k, v in example["view"].items() if k != "state"}
    payload = view_submission(
        default_workspace(), view, user_id="U0BOB00002", values={"hspI": {"maBWU": "because"}}
    )
    assert set(payload) == set(example)
    assert set(payload["view"]) == set(example["view"])
    assert payload["view"]["state"]["values"]["hspI"]["maBWU"] == {
        "type": "plain_text_input",
        "value": "because",
    }
