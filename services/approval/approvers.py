"""Who may decide an approval: the repository's approvers, else the global ones, else anyone.

Entries are Slack user ids (``U…``/``W…``), Slack user groups (``S…``, members looked up with
``usergroups.users.list`` and kept for a minute) or plain names for the web API and the CLI.
A Slack id only ever matches an identity from a request Slack signed; a name typed into the
web API is an ``unverified:`` (or ``token:``/``proxy:``) identity and can never pass for one.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

from medic.access import Identity, IdentitySource
from medic.config import Settings
from medic.slack.client import SlackClient
from medic.slack.errors import SlackError

_SLACK_USER = re.compile(r"^[UW][A-Z0-9]{2,}$")
_SLACK_GROUP = re.compile(r"^S[A-Z0-9]{2,}$")
GROUP_CACHE_SECONDS = 60.0


@dataclass
class ApproverPolicy:
    settings: Settings
    slack: SlackClient | None = None
    _groups: dict[str, tuple[float, frozenset[str]]] = field(default_factory=dict)

    async def refusal(self, who: Identity, repository: str) -> str | None:
        """Why ``who`` may not decide for ``repository``, or None when they may.

        A Slack identity (``slack:<team>/<user>``) matches user ids and user groups; any other
        identity matches a plain name (its subject: ``alice`` for ``token:alice``) or its full
        principal (``proxy:alice@example.com``).
        """
        entries = self.settings.policy_for(repository).approvers
        if not entries:
            return None
        if who.source is IdentitySource.SLACK:
            user = who.subject.rsplit("/", 1)[-1]
            if user in entries:
                return None
            for group in (e for e in entries if _SLACK_GROUP.match(e)):
                if user in await self._members(group):
                    return None
        elif {who.subject, who.principal} & {
            e for e in entries if not (_SLACK_USER.match(e) or _SLACK_GROUP.match(e))
        }:
            return None
        return f"{who.principal} is not among the approvers of {repository}"

    async def _members(self, group: str) -> frozenset[str]:
        cached = self._groups.get(group)
        if cached is not None and time.monotonic() - cached[0] < GROUP_CACHE_SECONDS:
            return cached[1]
        if self.slack is None:
            return frozenset()
        try:
            members = await self.slack.usergroup_members(group)
        except SlackError:
            return cached[1] if cached is not None else frozenset()  # fail closed on a first lookup
        self._groups[group] = (time.monotonic(), members)
        return members
