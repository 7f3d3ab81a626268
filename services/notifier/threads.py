"""Where each failure's Slack thread is: a JetStream key-value record per failure.

The record is the notifier's memory across restarts and replicas: the parent's channel and
ts (so nobody posts a second parent), which events were told (so a redelivery tells nothing
twice), an intent per reply being posted (so a crash in between is reconciled from the thread,
not repeated blindly), and the approval card. Updates are compare-and-set on the revision.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import datetime
from typing import Any

from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue
from pydantic import BaseModel, ConfigDict

from medic.bus import open_key_value
from medic.services.notifier.facts import Facts

MAX_CAS_ATTEMPTS = 20


class ApprovalCard(BaseModel):
    model_config = ConfigDict(frozen=True)

    approval_id: str
    ts: str
    request: dict[str, Any]
    """The ApprovalRequested event, to draw the card again when it changes."""
    needed: int = 1
    approved_by: tuple[str, ...] = ()
    outcome: str | None = None
    shown: str = ""
    """Digest of what the card shows now."""
    pointer_ts: str | None = None
    """The link posted in the approvals channel."""


class ThreadRecord(BaseModel):
    model_config = ConfigDict(frozen=True)

    failure_id: str
    channel: str
    ts: str | None = None
    posting_since: datetime | None = None
    facts: Facts
    told: tuple[str, ...] = ()
    telling: tuple[str, ...] = ()
    parent_shown: str = ""
    permalink: str | None = None
    critical_ts: str | None = None
    approval: ApprovalCard | None = None


class ThreadConflict(Exception):
    """Another replica changed the record more often than we could catch up."""


class ThreadStore:
    def __init__(self, kv: KeyValue) -> None:
        self.kv = kv

    @classmethod
    async def open(cls, js: JetStreamContext, bucket: str) -> ThreadStore:
        return cls(await open_key_value(js, bucket, history=1))

    async def get(self, failure_id: str) -> tuple[ThreadRecord, int] | None:
        try:
            entry = await self.kv.get(failure_id)
        except KeyNotFoundError:
            return None
        if entry.value is None:
            return None
        return ThreadRecord.model_validate_json(entry.value), int(entry.revision or 0)

    async def create(self, record: ThreadRecord) -> int | None:
        """The new revision, or None when the failure already has a record."""
        try:
            return int(await self.kv.create(record.failure_id, record.model_dump_json().encode()))
        except KeyWrongLastSequenceError:
            return None

    async def mutate(self, failure_id: str, change: Callable[[ThreadRecord], ThreadRecord]) -> ThreadRecord:
        """Apply ``change`` to the current record, retrying on concurrent writes.

        ``change`` must be a merge (sets grow, fields fill once), so applying it to a newer
        record than the one it was computed from never loses another writer's work.
        """
        for _ in range(MAX_CAS_ATTEMPTS):
            found = await self.get(failure_id)
            if found is None:
                raise KeyError(failure_id)
            record, revision = found
            changed = change(record)
            if changed == record:
                return record
            with contextlib.suppress(KeyWrongLastSequenceError):
                await self.kv.update(failure_id, changed.model_dump_json().encode(), last=revision)
                return changed
        raise ThreadConflict(f"thread record {failure_id} kept changing under us")
