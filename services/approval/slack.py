"""Approve / Reject from Slack: Bolt (HTTP mode at ``POST /slack/events``) verifies that Slack
signed the request (stale or forged: 401, nothing changes), then the click goes through the
same desk as the web API and the CLI, so the same approvers and four-eyes rules apply.

Bolt runs with ``process_before_response``: the decision is recorded and published on the
bus before Slack gets its acknowledgement, so there is no background task a crash could lose
(the desk's record + publish is itself reconciled after a crash). A refusal is told to the
person only (ephemeral) and audited as ApprovalAttemptRefused.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Request, Response
from slack_bolt.adapter.fastapi.async_handler import AsyncSlackRequestHandler
from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from medic.access import Identity, IdentitySource, Scope
from medic.config import Settings
from medic.services.approval.desk import ApprovalDesk
from medic.services.approval.records import (
    ApprovalConflict,
    ApprovalForbidden,
    ApprovalRecord,
    ApprovalStatus,
    Via,
)
from medic.slack.actions import APPROVE_ACTION, REASON_BLOCK, REASON_INPUT, REJECT_ACTION, REJECT_MODAL
from medic.slack.client import SlackClient
from medic.slack.errors import SlackError
from medic.slack.signing import verify
from medic.telemetry import logger

log = logger(__name__)


def _where(body: dict[str, Any]) -> tuple[str | None, str | None]:
    """The channel and thread of the clicked message, to answer the person in place."""
    container = body.get("container") or {}
    channel = (body.get("channel") or {}).get("id") or container.get("channel_id")
    thread = container.get("thread_ts") or (body.get("message") or {}).get("thread_ts")
    return (str(channel) if channel else None), (str(thread) if thread else None)


def _outcome(record: ApprovalRecord) -> str:
    if record.status is ApprovalStatus.PENDING:
        return f"Your approval is recorded; {record.approvals_needed - len(record.approvals)} more needed."
    return f"Done: {record.status.value}."


def well_formed(body: bytes) -> bool:
    """An interaction is a form whose ``payload`` is a JSON object; anything else never reaches Bolt."""
    try:
        fields = parse_qs(body.decode("utf-8"), strict_parsing=bool(body))
    except (UnicodeDecodeError, ValueError):
        return False
    payload = fields.get("payload")
    if payload is None:
        return "payload" not in fields
    try:
        document = json.loads(payload[0]) if len(payload) == 1 else None
    except ValueError:
        return False
    return isinstance(document, dict) and _has_the_shape_bolt_reads(document)


def _has_the_shape_bolt_reads(document: dict[str, Any]) -> bool:
    """The fields Bolt indexes without checking: without them it would answer 500."""
    user = document.get("user")
    if (
        not isinstance(document.get("type"), str)
        or not isinstance(user, dict)
        or not isinstance(user.get("id"), str)
    ):
        return False
    if document["type"].startswith("view_"):
        view = document.get("view")
        return isinstance(view, dict) and isinstance(view.get("type"), str)
    if document["type"] == "block_actions":
        actions = document.get("actions")
        return isinstance(actions, list) and all(isinstance(a, dict) for a in actions)
    return True


def approval_id_of(value: Any) -> str | None:
    """The button's value names an approval (a UUID); anything else names none."""
    try:
        return str(uuid.UUID(str(value))) if isinstance(value, str) and len(value) <= 64 else None
    except ValueError:
        return None


def slack_identity(body: dict[str, Any]) -> Identity:
    """The person Slack vouches for (the request carries Slack's signature): ``slack:<team>/<user>``."""
    user = body.get("user") or {}
    team = (body.get("team") or {}).get("id") or user.get("team_id") or "T0"
    return Identity(
        source=IdentitySource.SLACK, subject=f"{team}/{user.get('id', '')}", scopes=frozenset({Scope.APPROVE})
    )


def reject_modal(approval_id: str, channel: str | None, thread: str | None) -> dict[str, Any]:
    return {
        "type": "modal",
        "callback_id": REJECT_MODAL,
        "private_metadata": json.dumps({"approval_id": approval_id, "channel": channel, "thread": thread}),
        "title": {"type": "plain_text", "text": "Reject the fix"},
        "submit": {"type": "plain_text", "text": "Reject"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            {
                "type": "input",
                "block_id": REASON_BLOCK,
                "optional": True,
                "label": {"type": "plain_text", "text": "Why? (optional)"},
                "element": {
                    "type": "plain_text_input",
                    "action_id": REASON_INPUT,
                    "multiline": True,
                    "max_length": 2000,
                },
            }
        ],
    }


class SlackApprovals:
    def __init__(self, *, settings: Settings, desk: Callable[[], ApprovalDesk], slack: SlackClient) -> None:
        if settings.slack_bot_token is None:
            raise ValueError("Slack approvals need slack_bot_token")
        if settings.slack_signing_secret is None and settings.slack_app_token is None:
            raise ValueError(
                "Slack approvals need slack_signing_secret (HTTP mode) or slack_app_token (Socket Mode)"
            )
        self.desk = desk
        self.slack = slack
        self.settings = settings
        self._socket: Any = None
        token = settings.slack_bot_token.get_secret_value()
        secret = settings.slack_signing_secret
        self.app = AsyncApp(
            token=token,
            # Socket Mode requests are not signed (Bolt skips the check); "" keeps Bolt from
            # reading SLACK_SIGNING_SECRET out of the environment behind our settings' back
            signing_secret=secret.get_secret_value() if secret is not None else "",
            client=AsyncWebClient(token=token, base_url=settings.slack_api_url.rstrip("/") + "/"),
            process_before_response=True,
        )
        self.app.action(APPROVE_ACTION)(self._approve)
        self.app.action(REJECT_ACTION)(self._reject_clicked)
        self.app.view(REJECT_MODAL)(self._reject_submitted)
        self.handler = AsyncSlackRequestHandler(self.app)
        self.secret = secret.get_secret_value() if secret is not None else ""

    @property
    def http_mode(self) -> bool:
        return self.settings.slack_signing_secret is not None

    async def connect(self) -> None:
        """Socket Mode (``slack_app_token``): open the connection to Slack; no request URL needed."""
        if self.settings.slack_app_token is None:
            return
        from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler

        self._socket = AsyncSocketModeHandler(self.app, self.settings.slack_app_token.get_secret_value())
        await self._socket.connect_async()

    async def close(self) -> None:
        if self._socket is not None:
            await self._socket.close_async()
            self._socket = None

    def router(self) -> APIRouter:
        router = APIRouter(tags=["slack"])

        @router.post("/slack/events", include_in_schema=False)
        async def events(request: Request) -> Response:
            body = await request.body()
            signature = request.headers.get("x-slack-signature", "")
            timestamp = request.headers.get("x-slack-request-timestamp", "0")
            if not verify(
                self.secret, body, timestamp, signature, now=time.time()
            ):  # forged or stale: 401 first
                return Response("invalid request", status_code=401)
            if not well_formed(body):
                return Response("malformed Slack request", status_code=400)
            try:
                return await self.handler.handle(request)
            except Exception as exc:  # Bolt's parsing of a shape it did not expect: refuse, don't crash
                log.warning("slack_request_refused", error=type(exc).__name__)
                return Response("malformed Slack request", status_code=400)

        return router

    async def _tell(self, channel: str | None, user: str, thread: str | None, text: str) -> None:
        if channel is None:
            return
        try:  # bounded: Slack's answer waits for this, and Slack wants it within 3 seconds
            await asyncio.wait_for(self.slack.post_ephemeral(channel, user, text=text, thread_ts=thread), 1.5)
        except (SlackError, TimeoutError) as exc:  # the decision stands; only the courtesy note is lost
            log.warning("slack_ephemeral_failed", error=str(exc))

    async def _decide(
        self, body: dict[str, Any], approval_id: str | None, status: ApprovalStatus, note: str = ""
    ) -> tuple[ApprovalRecord | None, str]:
        if approval_id is None or not str((body.get("user") or {}).get("id") or ""):
            return None, "This approval is unknown (it may belong to another ci-medic)."
        try:
            record = await self.desk().decide(
                approval_id, status, by=slack_identity(body), via=Via.SLACK, note=note
            )
        except KeyError:
            return None, "This approval is unknown (it may belong to another ci-medic)."
        except ApprovalForbidden as exc:
            return None, f"You may not decide this: {exc}."
        except ApprovalConflict as exc:
            return None, f"Nothing changed: {exc}."
        return record, _outcome(record)

    async def _approve(self, ack: Any, body: dict[str, Any], action: dict[str, Any]) -> None:
        channel, thread = _where(body)
        _, told = await self._decide(body, approval_id_of(action.get("value")), ApprovalStatus.GRANTED)
        await ack()
        user = str((body.get("user") or {}).get("id") or "")
        if user:
            await self._tell(channel, user, thread, told)

    async def _reject_clicked(self, ack: Any, body: dict[str, Any], action: dict[str, Any]) -> None:
        """Check who clicks before asking why: a non-approver gets no modal, only the refusal."""
        channel, thread = _where(body)
        approval_id = approval_id_of(action.get("value"))
        user = slack_identity(body)
        user_id = str((body.get("user") or {}).get("id") or "")
        desk = self.desk()
        found = await desk.store.get(approval_id) if approval_id is not None else None
        refusal = None
        if found is None or approval_id is None:
            refusal = "This approval is unknown."
        else:
            try:
                await desk.authorise(found.record, user, ApprovalStatus.REJECTED, via=Via.SLACK)
            except ApprovalForbidden as exc:  # audited by the desk
                refusal = f"You may not decide this: {exc}."
        await ack()
        if refusal is not None:
            await self._tell(channel, user_id, thread, refusal)
            return
        assert approval_id is not None  # found above
        try:
            await self.slack.open_view(
                str(body.get("trigger_id", "")), reject_modal(approval_id, channel, thread)
            )
        except SlackError as exc:
            await self._tell(channel, user_id, thread, f"Could not open the form ({exc.code}); try again.")

    async def _reject_submitted(self, ack: Any, body: dict[str, Any], view: dict[str, Any]) -> None:
        try:
            meta = json.loads(view.get("private_metadata") or "{}")
        except ValueError:
            meta = {}
        if not isinstance(meta, dict):
            meta = {}
        values = ((view.get("state") or {}).get("values") or {}).get(REASON_BLOCK, {})
        reason = str((values.get(REASON_INPUT) or {}).get("value") or "")[:2000]
        record, told = await self._decide(
            body, approval_id_of(meta.get("approval_id")), ApprovalStatus.REJECTED, reason
        )
        if record is None:
            await ack(response_action="errors", errors={REASON_BLOCK: told[:150]})
            return
        await ack()
        channel, thread = meta.get("channel"), meta.get("thread")
        await self._tell(
            channel if isinstance(channel, str) else None,
            str(body["user"]["id"]),
            thread if isinstance(thread, str) else None,
            told,
        )
