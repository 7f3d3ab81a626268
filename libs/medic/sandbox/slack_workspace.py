"""The sandbox Slack's workspace: channels with their messages and threads, users, user groups.

Plain state, no HTTP: the app in :mod:`medic.sandbox.slack` reads and changes it, and tests
read it back over HTTP. Ids have Slack's shapes (``C…``, ``U…``, ``S…``, ts ``1234567890.000001``)
so answers validate against Slack's published schemas.
"""

from __future__ import annotations

import hashlib
import itertools
import time
from dataclasses import dataclass, field
from typing import Any

TEAM_ID = "T0SANDBOX1"
BOT_USER_ID = "U0MEDICBOT"
BOT_ID = "B0MEDICBOT1"
APP_ID = "A0MEDICAPP1"


def channel_id_for(name: str) -> str:
    """A stable ``C…`` id for a channel name (``#ci-medic`` and ``ci-medic`` are one channel)."""
    digest = hashlib.sha1(name.lstrip("#").lower().encode()).hexdigest().upper()  # noqa: S324 - an id, not a secret
    return "C" + digest[:10]


@dataclass
class Message:
    channel: str
    ts: str
    text: str
    blocks: list[dict[str, Any]]
    thread_ts: str | None = None
    user: str = BOT_USER_ID
    edits: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    """Earlier versions (text, blocks) after each chat.update, oldest first."""

    def as_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": "message",
            "channel": self.channel,
            "ts": self.ts,
            "text": self.text,
            "blocks": self.blocks,
            "user": self.user,
            "edits": self.edits,
        }
        if self.thread_ts is not None:
            body["thread_ts"] = self.thread_ts
        return body


@dataclass
class Channel:
    id: str
    name: str
    messages: list[Message] = field(default_factory=list)


@dataclass
class Workspace:
    channels: dict[str, Channel] = field(default_factory=dict)
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    usergroups: dict[str, list[str]] = field(default_factory=dict)
    ephemeral: list[dict[str, Any]] = field(default_factory=list)
    views: dict[str, dict[str, Any]] = field(default_factory=dict)
    triggers: dict[str, dict[str, Any]] = field(default_factory=dict)
    """trigger_id -> the user and message of the click that made it (views.open needs one)."""
    _seq: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def next_ts(self) -> str:
        return f"{int(time.time()):010d}.{next(self._seq):06d}"

    def next_id(self, prefix: str) -> str:
        return f"{prefix}0{next(self._seq):09d}"

    def channel(self, ref: str, *, create: bool = False) -> Channel | None:
        """By id (``C…``) or by name (``#name`` / ``name``); names create the channel on first use."""
        if ref in self.channels:
            return self.channels[ref]
        name = ref.lstrip("#")
        if not name or (ref.startswith(("C", "G", "D")) and ref.isupper() and ref.isalnum()):
            return None
        cid = channel_id_for(name)
        if cid not in self.channels and create:
            self.channels[cid] = Channel(id=cid, name=name)
        return self.channels.get(cid)

    def find(self, channel: str, ts: str) -> Message | None:
        found = self.channel(channel)
        if found is None:
            return None
        return next((m for m in found.messages if m.ts == ts), None)

    def add_user(self, user_id: str, name: str, real_name: str = "", *, deleted: bool = False) -> None:
        self.users[user_id] = {
            "id": user_id,
            "team_id": TEAM_ID,
            "name": name,
            "real_name": real_name or name,
            "deleted": deleted,
            "is_bot": False,
            "is_app_user": False,
            "updated": int(time.time()),
            "profile": _profile(name, real_name or name),
        }

    def thread(self, channel: str, ts: str) -> list[Message]:
        found = self.channel(channel)
        if found is None:
            return []
        return [m for m in found.messages if m.ts == ts or m.thread_ts == ts]


def _profile(name: str, real_name: str) -> dict[str, Any]:
    return {
        "real_name": real_name,
        "real_name_normalized": real_name,
        "display_name": name,
        "display_name_normalized": name,
        "avatar_hash": "g0000000000",
        "title": "",
        "phone": "",
        "skype": "",
        "status_text": "",
        "status_emoji": "",
        "fields": None,
    }


def default_workspace() -> Workspace:
    """Three people to play with: two approvers (alice, bob) and one who is not (mallory)."""
    workspace = Workspace()
    workspace.add_user("U0ALICE001", "alice", "Alice Approver")
    workspace.add_user("U0BOB00002", "bob", "Bob Builder")
    workspace.add_user("U0MALLORY3", "mallory", "Mallory Outsider")
    workspace.usergroups["S0SRELEADS"] = ["U0ALICE001", "U0BOB00002"]
    return workspace
