"""The Slack Web API client: slack_sdk's AsyncWebClient behind a small typed surface.

Only the methods ci-medic uses, each answering plain values, and every failure mapped to
:mod:`medic.slack.errors` in one place (:meth:`SlackClient._call`). Posting and editing go
through a :class:`~medic.slack.pacing.ChannelPacer`, so one process never bursts a channel,
and a 429 holds the channel for the ``Retry-After`` Slack gave.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
from prometheus_client import Counter
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from medic.slack.errors import SlackError, SlackRateLimited, SlackUnavailable
from medic.slack.pacing import ChannelPacer

SLACK_API_URL = "https://slack.com/api/"
DEFAULT_RETRY_AFTER = 1.0
REQUESTS = Counter(
    "medic_slack_requests_total", "Slack Web API calls by method and outcome", ["method", "outcome"]
)


@dataclass(frozen=True)
class PostedMessage:
    channel: str
    """The channel id Slack answered with (chat.update needs the id, not the name)."""
    ts: str


@dataclass(frozen=True)
class SlackUser:
    id: str
    name: str
    real_name: str = ""
    deleted: bool = False
    is_bot: bool = False


class SlackClient:
    def __init__(
        self,
        *,
        token: str,
        base_url: str = SLACK_API_URL,
        pacer: ChannelPacer | None = None,
        timeout: int = 10,
    ) -> None:
        self.web = AsyncWebClient(token=token, base_url=base_url.rstrip("/") + "/", timeout=timeout)
        self.pacer = pacer or ChannelPacer()

    async def aclose(self) -> None:
        """AsyncWebClient opens a session per call; nothing is held open between calls."""

    async def _call(
        self, method: str, call: Callable[[], Awaitable[AsyncSlackResponse]], *, channel: str | None = None
    ) -> dict[str, Any]:
        try:
            response = await call()
        except SlackApiError as exc:
            status = int(getattr(exc.response, "status_code", 0) or 0)
            data = exc.response.data if isinstance(exc.response.data, dict) else {}
            code = str(data.get("error", ""))
            if status == 429:
                retry_after = _retry_after(exc.response.headers)
                if channel is not None:
                    self.pacer.hold(channel, retry_after)
                REQUESTS.labels(method, "rate_limited").inc()
                raise SlackRateLimited(
                    f"Slack {method}: rate limited, retry after {retry_after:g}s",
                    method=method,
                    retry_after=retry_after,
                ) from None
            if status >= 500 or status == 0:
                REQUESTS.labels(method, "unavailable").inc()
                raise SlackUnavailable(
                    f"Slack {method}: HTTP {status}", method=method, status=status
                ) from None
            REQUESTS.labels(method, "refused").inc()
            raise SlackError(
                f"Slack {method}: {code or status}", method=method, code=code, status=status
            ) from None
        except (SlackClientError, aiohttp.ClientError, TimeoutError, OSError) as exc:
            REQUESTS.labels(method, "unavailable").inc()
            raise SlackUnavailable(f"Slack {method}: {type(exc).__name__}: {exc}", method=method) from None
        REQUESTS.labels(method, "ok").inc()
        answer = response.data
        if not isinstance(answer, dict):
            raise SlackUnavailable(f"Slack {method}: answer is not a JSON object", method=method)
        return answer

    async def post_message(
        self,
        channel: str,
        *,
        text: str,
        blocks: list[dict[str, Any]] | None = None,
        thread_ts: str | None = None,
    ) -> PostedMessage:
        await self.pacer.slot(channel)
        data = await self._call(
            "chat.postMessage",
            lambda: self.web.chat_postMessage(
                channel=channel, text=text, blocks=blocks, thread_ts=thread_ts, unfurl_links=False
            ),
            channel=channel,
        )
        return PostedMessage(channel=str(data.get("channel", channel)), ts=str(data["ts"]))

    async def update_message(
        self, channel: str, ts: str, *, text: str, blocks: list[dict[str, Any]] | None = None
    ) -> None:
        await self.pacer.slot(channel)
        await self._call(
            "chat.update",
            lambda: self.web.chat_update(channel=channel, ts=ts, text=text, blocks=blocks),
            channel=channel,
        )

    async def post_ephemeral(
        self,
        channel: str,
        user: str,
        *,
        text: str,
        thread_ts: str | None = None,
        blocks: list[dict[str, Any]] | None = None,
    ) -> None:
        await self._call(
            "chat.postEphemeral",
            lambda: self.web.chat_postEphemeral(
                channel=channel, user=user, text=text, thread_ts=thread_ts, blocks=blocks
            ),
        )

    async def thread_replies(self, channel: str, ts: str) -> list[dict[str, Any]]:
        """The parent and its replies (first page: a failure's thread is short)."""
        data = await self._call(
            "conversations.replies", lambda: self.web.conversations_replies(channel=channel, ts=ts, limit=200)
        )
        return [m for m in data.get("messages", []) if isinstance(m, dict)]

    async def permalink(self, channel: str, ts: str) -> str:
        data = await self._call(
            "chat.getPermalink", lambda: self.web.chat_getPermalink(channel=channel, message_ts=ts)
        )
        return str(data["permalink"])

    async def user_info(self, user_id: str) -> SlackUser:
        data = await self._call("users.info", lambda: self.web.users_info(user=user_id))
        user = data.get("user") or {}
        return SlackUser(
            id=str(user.get("id", user_id)),
            name=str(user.get("name", "")),
            real_name=str(user.get("real_name", "") or (user.get("profile") or {}).get("real_name", "")),
            deleted=bool(user.get("deleted", False)),
            is_bot=bool(user.get("is_bot", False)),
        )

    async def usergroup_members(self, usergroup_id: str) -> frozenset[str]:
        data = await self._call(
            "usergroups.users.list", lambda: self.web.usergroups_users_list(usergroup=usergroup_id)
        )
        return frozenset(str(u) for u in data.get("users", []))

    async def open_view(self, trigger_id: str, view: dict[str, Any]) -> None:
        await self._call("views.open", lambda: self.web.views_open(trigger_id=trigger_id, view=view))

    async def auth_test(self) -> dict[str, Any]:
        return await self._call("auth.test", self.web.auth_test)


def _retry_after(headers: Any) -> float:
    value: Any = None
    with contextlib.suppress(Exception):
        value = headers.get("Retry-After") or headers.get("retry-after")
    if isinstance(value, list):
        value = value[0] if value else None
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return DEFAULT_RETRY_AFTER
    return min(max(seconds, 0.0), 300.0)
