"""A local Slack for ``medic run`` without a bot token, and for tests.

It speaks the real Web API over HTTP (``POST /api/chat.postMessage`` and the other methods
ci-medic calls; bearer token; ``{"ok": false, "error": ...}`` refusals; 429 with
``Retry-After``), so the production :class:`medic.slack.client.SlackClient` is exercised
unchanged. It keeps every channel and thread, readable at ``/_sandbox/...``; it can be told to
answer 429 or 5xx; and it plays the people: ``POST /_sandbox/click`` presses a button of a
posted message and ``POST /_sandbox/submit`` submits an opened modal, each by sending the app a
``block_actions`` / ``view_submission`` request signed with the app's signing secret.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from medic.runtime import HttpServer
from medic.sandbox.slack_interactions import block_actions, find_button, signed_form, view_submission
from medic.sandbox.slack_workspace import (
    BOT_ID,
    BOT_USER_ID,
    TEAM_ID,
    Message,
    Workspace,
    default_workspace,
)

SANDBOX_TOKEN = "xoxb-medic-sandbox"  # noqa: S105 - the sandbox's public, fixed token
SANDBOX_SIGNING_SECRET = "medic-sandbox-signing-secret"  # noqa: S105 - sandbox only, like the token


@dataclass
class SlackModes:
    """Switchable misbehaviour; counters count down one per Web API call they apply to."""

    rate_limit: int = 0
    retry_after: float = 1.0
    server_error: int = 0
    methods: tuple[str, ...] = ()
    """Only these methods misbehave (empty: every method)."""

    def update(self, changes: dict[str, Any]) -> None:
        for name, value in changes.items():
            if name not in self.__dataclass_fields__:
                raise ValueError(f"unknown mode {name!r}")
            current = getattr(self, name)
            setattr(self, name, tuple(value) if isinstance(current, tuple) else type(current)(value))


@dataclass
class SandboxSlack:
    app: FastAPI
    token: str
    signing_secret: str
    events_url: str | None
    workspace: Workspace = field(default_factory=default_workspace)
    modes: SlackModes = field(default_factory=SlackModes)
    requests: list[dict[str, Any]] = field(default_factory=list)
    clicks: list[dict[str, Any]] = field(default_factory=list)

    def reset(self) -> None:
        self.workspace = default_workspace()
        self.modes = SlackModes()
        self.requests.clear()
        self.clicks.clear()


def _error(error: str, status: int = 200, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"ok": False, "error": error}, status_code=status, headers=headers)


async def _params(request: Request) -> dict[str, Any]:
    """Query, form and JSON parameters merged, as Slack accepts all three."""
    params: dict[str, Any] = dict(request.query_params)
    body = await request.body()
    kind = request.headers.get("content-type", "").split(";")[0].strip()
    if kind == "application/json" and body:
        parsed = json.loads(body)
        if not isinstance(parsed, dict):
            raise ValueError("json_not_object")
        params.update(parsed)
    elif kind == "application/x-www-form-urlencoded" and body:
        params.update(parse_qsl(body.decode(), keep_blank_values=True))
    return params


def _blocks(value: Any) -> list[dict[str, Any]]:
    if value is None or value == "":
        return []
    if isinstance(value, str):
        value = json.loads(value)
    if not isinstance(value, list) or not all(isinstance(b, dict) and "type" in b for b in value):
        raise ValueError("invalid_blocks")
    return value


def create_sandbox_slack(
    *,
    events_url: str | None = None,
    token: str = SANDBOX_TOKEN,
    signing_secret: str = SANDBOX_SIGNING_SECRET,
) -> SandboxSlack:
    app = FastAPI(title="sandbox Slack", docs_url=None, redoc_url=None, openapi_url=None)
    sandbox = SandboxSlack(app=app, token=token, signing_secret=signing_secret, events_url=events_url)

    def misbehave(method: str) -> Response | None:
        modes = sandbox.modes
        if modes.methods and method not in modes.methods:
            return None
        if modes.rate_limit > 0:
            modes.rate_limit -= 1
            retry = f"{modes.retry_after:g}"
            return _error("rate_limited", 429, {"Retry-After": retry})
        if modes.server_error > 0:
            modes.server_error -= 1
            return PlainTextResponse("upstream connect error", status_code=503)
        return None

    @app.api_route("/api/{method}", methods=["GET", "POST"])
    async def web_api(method: str, request: Request) -> Response:
        try:
            params = await _params(request)
        except (ValueError, UnicodeDecodeError) as exc:
            return _error(str(exc) if str(exc) in {"json_not_object"} else "invalid_json")
        bearer = request.headers.get("authorization", "")
        token = (
            bearer.removeprefix("Bearer ").strip() if bearer.startswith("Bearer ") else params.get("token")
        )
        sandbox.requests.append(
            {"method": method, "http_method": request.method, "params": params, "bearer": bool(bearer)}
        )
        if not token:
            return _error("not_authed")
        if token != sandbox.token:
            return _error("invalid_auth")
        refused = misbehave(method)
        if refused is not None:
            return refused
        handler = _METHODS.get(method)
        if handler is None:
            return _error("unknown_method", 404)
        try:
            return JSONResponse(handler(sandbox, params, str(request.base_url).rstrip("/")))
        except ValueError as exc:
            return _error(str(exc))

    _mount_controls(sandbox)
    return sandbox


def _post_message(sandbox: SandboxSlack, params: dict[str, Any], base: str) -> dict[str, Any]:
    ws = sandbox.workspace
    channel = ws.channel(str(params.get("channel", "")), create=True)
    if channel is None:
        raise ValueError("channel_not_found")
    blocks = _blocks(params.get("blocks"))
    text = str(params.get("text", "") or "")
    if not text and not blocks:
        raise ValueError("no_text")
    if len(text) > 40_000 or len(blocks) > 50:
        raise ValueError("msg_too_long")
    thread_ts = params.get("thread_ts") or None
    if thread_ts is not None and ws.find(channel.id, str(thread_ts)) is None:
        raise ValueError("channel_not_found")  # Slack's enum has no thread_not_found for this method
    message = Message(channel=channel.id, ts=ws.next_ts(), text=text, blocks=blocks, thread_ts=thread_ts)
    channel.messages.append(message)
    answer: dict[str, Any] = {
        "type": "message",
        "ts": message.ts,
        "text": text,
        "bot_id": BOT_ID,
        "user": BOT_USER_ID,
    }
    if blocks:
        answer["blocks"] = blocks
    if thread_ts is not None:
        answer["thread_ts"] = thread_ts
    return {"ok": True, "channel": channel.id, "ts": message.ts, "message": answer}


def _update(sandbox: SandboxSlack, params: dict[str, Any], base: str) -> dict[str, Any]:
    ws = sandbox.workspace
    channel = ws.channel(str(params.get("channel", "")))
    if channel is None:
        raise ValueError("channel_not_found")
    message = ws.find(channel.id, str(params.get("ts", "")))
    if message is None:
        raise ValueError("message_not_found")
    blocks = _blocks(params.get("blocks")) if "blocks" in params else message.blocks
    text = str(params.get("text", "") or "")
    if not text and not blocks:
        raise ValueError("no_text")
    message.history.append({"text": message.text, "blocks": message.blocks})
    message.text, message.blocks = text, blocks
    message.edits += 1
    return {"ok": True, "channel": channel.id, "ts": message.ts, "text": text, "message": {"text": text}}


def _post_ephemeral(sandbox: SandboxSlack, params: dict[str, Any], base: str) -> dict[str, Any]:
    ws = sandbox.workspace
    channel = ws.channel(str(params.get("channel", "")), create=True)
    if channel is None:
        raise ValueError("channel_not_found")
    user = str(params.get("user", ""))
    if user not in ws.users:
        raise ValueError("user_not_in_channel")
    text = str(params.get("text", "") or "")
    if not text and not params.get("blocks"):
        raise ValueError("no_text")
    ts = ws.next_ts()
    ws.ephemeral.append(
        {"channel": channel.id, "user": user, "text": text, "thread_ts": params.get("thread_ts"), "ts": ts}
    )
    return {"ok": True, "message_ts": ts}


def _permalink(sandbox: SandboxSlack, params: dict[str, Any], base: str) -> dict[str, Any]:
    ws = sandbox.workspace
    channel = ws.channel(str(params.get("channel", "")))
    if channel is None:
        raise ValueError("channel_not_found")
    ts = str(params.get("message_ts", ""))
    if ws.find(channel.id, ts) is None:
        raise ValueError("message_not_found")
    return {
        "ok": True,
        "channel": channel.id,
        "permalink": f"{base}/_sandbox/archives/{channel.id}/p{ts.replace('.', '')}",
    }


def _user_info(sandbox: SandboxSlack, params: dict[str, Any], base: str) -> dict[str, Any]:
    user = sandbox.workspace.users.get(str(params.get("user", "")))
    if user is None:
        raise ValueError("user_not_found")
    return {"ok": True, "user": user}


def _usergroup_users(sandbox: SandboxSlack, params: dict[str, Any], base: str) -> dict[str, Any]:
    group = str(params.get("usergroup", ""))
    if not group:
        raise ValueError("invalid_arg_name")
    return {"ok": True, "users": list(sandbox.workspace.usergroups.get(group, []))}


def _open_view(sandbox: SandboxSlack, params: dict[str, Any], base: str) -> dict[str, Any]:
    ws = sandbox.workspace
    trigger = ws.triggers.pop(str(params.get("trigger_id", "")), None)
    if trigger is None:
        raise ValueError("invalid_trigger_id")  # expired, used, or never issued
    view = params.get("view")
    if isinstance(view, str):
        view = json.loads(view)
    if not isinstance(view, dict) or view.get("type") != "modal":
        raise ValueError("invalid_arguments")
    opened = {
        **view,
        "id": ws.next_id("V"),
        "team_id": TEAM_ID,
        "app_id": "A0MEDICAPP1",
        "bot_id": BOT_ID,
        "hash": f"{time.time():.0f}.sandbox",
        "root_view_id": None,
        "previous_view_id": None,
        "opened_for": trigger["user"],
    }
    opened["root_view_id"] = opened["id"]
    ws.views[opened["id"]] = opened
    return {"ok": True, "view": {k: v for k, v in opened.items() if k != "opened_for"}}


def _replies(sandbox: SandboxSlack, params: dict[str, Any], base: str) -> dict[str, Any]:
    ws = sandbox.workspace
    channel = ws.channel(str(params.get("channel", "")))
    if channel is None:
        raise ValueError("channel_not_found")
    ts = str(params.get("ts", ""))
    thread = ws.thread(channel.id, ts)
    if not thread:
        raise ValueError("thread_not_found")
    messages = []
    for message in thread:
        shown = {**message.as_json(), "thread_ts": ts}
        shown.pop("edits", None)
        shown.pop("channel", None)
        if message.ts == ts:
            shown.update(reply_count=len(thread) - 1, subscribed=False)
        else:
            shown["parent_user_id"] = BOT_USER_ID
        messages.append(shown)
    return {"ok": True, "messages": messages, "has_more": False}


def _auth_test(sandbox: SandboxSlack, params: dict[str, Any], base: str) -> dict[str, Any]:
    return {
        "ok": True,
        "url": f"{base}/",
        "team": "medic sandbox",
        "user": "ci-medic",
        "team_id": TEAM_ID,
        "user_id": BOT_USER_ID,
        "bot_id": BOT_ID,
    }


_METHODS = {
    "chat.postMessage": _post_message,
    "chat.update": _update,
    "chat.postEphemeral": _post_ephemeral,
    "chat.getPermalink": _permalink,
    "users.info": _user_info,
    "usergroups.users.list": _usergroup_users,
    "views.open": _open_view,
    "auth.test": _auth_test,
    "conversations.replies": _replies,
}


def _mount_controls(sandbox: SandboxSlack) -> None:
    from medic.sandbox.slack_controls import controls_router

    sandbox.app.include_router(controls_router(sandbox))


@dataclass
class RunningSlack:
    slack: SandboxSlack
    base_url: str

    @property
    def api_url(self) -> str:
        return f"{self.base_url}/api/"


@contextlib.asynccontextmanager
async def serve_sandbox_slack(*, events_url: str | None = None) -> AsyncIterator[RunningSlack]:
    """A fresh sandbox Slack on a free port in the running event loop."""
    slack = create_sandbox_slack(events_url=events_url)
    server = HttpServer(slack.app)
    await server.start()
    try:
        yield RunningSlack(slack, server.url)
    finally:
        await server.stop()


async def deliver(
    sandbox: SandboxSlack, payload: dict[str, Any], *, age_seconds: float = 0.0, forge: bool = False
) -> httpx.Response:
    """Send one interaction to the app, signed (or deliberately not) as Slack signs it."""
    if sandbox.events_url is None:
        raise RuntimeError("the sandbox Slack was not told where the app's /slack/events is")
    secret = "not-the-signing-secret" if forge else sandbox.signing_secret
    body, headers = signed_form(payload, secret, timestamp=int(time.time() - age_seconds))
    async with httpx.AsyncClient(timeout=10) as http:
        return await http.post(sandbox.events_url, content=body, headers=headers)


__all__ = [
    "SANDBOX_SIGNING_SECRET",
    "SANDBOX_TOKEN",
    "RunningSlack",
    "SandboxSlack",
    "block_actions",
    "create_sandbox_slack",
    "deliver",
    "find_button",
    "serve_sandbox_slack",
    "view_submission",
]
