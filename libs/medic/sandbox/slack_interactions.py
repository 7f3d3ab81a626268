"""What Slack sends to an app when a person presses a button or submits a modal.

The payloads follow the real ones copied in ``tests/contract/providers/slack`` (``block_actions``,
``view_submission``); on the wire they are the form field ``payload=<JSON>``, signed with the
app's signing secret exactly as Slack signs them.
"""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import urlencode

from medic.sandbox.slack_workspace import APP_ID, BOT_ID, TEAM_ID, Message, Workspace
from medic.slack.signing import signed_headers

FORM = "application/x-www-form-urlencoded"


def find_button(message: Message, action_id: str) -> tuple[str, dict[str, Any]] | None:
    """The (block_id, element) of the button ``action_id`` in the message, if it is still there."""
    for block in message.blocks:
        if block.get("type") != "actions":
            continue
        for element in block.get("elements", []):
            if element.get("type") == "button" and element.get("action_id") == action_id:
                return str(block.get("block_id", "")), element
    return None


def _user(workspace: Workspace, user_id: str) -> dict[str, Any]:
    user = workspace.users.get(user_id, {})
    name = str(user.get("name", user_id.lower()))
    return {"id": user_id, "username": name, "name": name, "team_id": TEAM_ID}


def block_actions(
    workspace: Workspace,
    message: Message,
    *,
    channel_name: str,
    user_id: str,
    block_id: str,
    button: dict[str, Any],
    trigger_id: str,
    base_url: str,
) -> dict[str, Any]:
    container: dict[str, Any] = {
        "type": "message",
        "message_ts": message.ts,
        "channel_id": message.channel,
        "is_ephemeral": False,
    }
    if message.thread_ts is not None:
        container["thread_ts"] = message.thread_ts
    return {
        "type": "block_actions",
        "user": _user(workspace, user_id),
        "api_app_id": APP_ID,
        "token": "sandbox_verification_token",
        "container": container,
        "trigger_id": trigger_id,
        "team": {"id": TEAM_ID, "domain": "medic-sandbox"},
        "channel": {"id": message.channel, "name": channel_name},
        "message": {**message.as_json(), "bot_id": BOT_ID},
        "response_url": f"{base_url}/_sandbox/response/{trigger_id}",
        "actions": [
            {
                "action_id": button["action_id"],
                "block_id": block_id,
                "text": button.get("text", {"type": "plain_text", "text": ""}),
                "value": button.get("value", ""),
                "type": "button",
                "action_ts": f"{time.time():.6f}",
            }
        ],
    }


def view_submission(
    workspace: Workspace, view: dict[str, Any], *, user_id: str, values: dict[str, dict[str, str]]
) -> dict[str, Any]:
    state = {
        block_id: {
            action_id: {"type": "plain_text_input", "value": value} for action_id, value in actions.items()
        }
        for block_id, actions in values.items()
    }
    return {
        "type": "view_submission",
        "team": {"id": TEAM_ID, "domain": "medic-sandbox"},
        "user": _user(workspace, user_id),
        "api_app_id": APP_ID,
        "token": "sandbox_verification_token",
        "trigger_id": workspace.next_id("T") + ".sandbox",
        "view": {**view, "state": {"values": state}},
        "response_urls": [],
    }


def signed_form(
    payload: dict[str, Any], secret: str, *, timestamp: int | None = None
) -> tuple[bytes, dict[str, str]]:
    """The request body Slack would send, and its signed headers."""
    body = urlencode({"payload": json.dumps(payload, separators=(",", ":"))}).encode()
    return body, signed_headers(secret, int(time.time()) if timestamp is None else timestamp, body, FORM)
