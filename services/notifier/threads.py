"""Where each failure's Slack thread is: a JetStream key-value record per failure.

The record is the notifier's memory across restarts and replicas: the parent's channel and
ts (so nobody posts a second parent), which events were told (so a redelivery tells nothing
twice), an intent per reply being posted (so a crash in between is reconciled from the thread,
not repeated blindly), and the approval card. Updates are compare-and-set on the revision.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from nats.js import JetStreamContext
from pydantic import BaseModel, ConfigDict

from medic.bus import Bucket, Topology
from medic.records import RecordConflict, RecordStore
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
    """Thread records on the kernel's record store, keyed by failure id."""

    def __init__(self, records: RecordStore[ThreadRecord]) -> None:
        self.records = records

    @classmethod
    async def open(cls, js: JetStreamContext, topology: Topology) -> ThreadStore:
        return cls(await RecordStore.open(js, topology.bucket(Bucket.SLACK_THREADS), ThreadRecord))

    async def get(self, failure_id: str) -> tuple[ThreadRecord, int] | None:
        found = await self.records.get(failure_id)
        return (found.record, found.revision) if found else None

    async def create(self, record: ThreadRecord) -> int | None:
        """The new revision, or None when the failure already has a record."""
        return await self.records.create(record.failure_id, record)

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
            try:
                await self.records.replace(failure_id, changed, revision)
            except RecordConflict:
                continue
            return changed
        raise ThreadConflict(f"thread record {failure_id} kept changing under us")
