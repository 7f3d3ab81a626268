"""Approval records in a JetStream key-value bucket, shared by every approval replica.

Updates are compare-and-set on the entry's revision, so two people pressing Approve and
Reject at once give one decision and one clear conflict.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError, NoKeysError
from nats.js.kv import KeyValue

from medic.bus import open_key_value
from medic.services.approval.records import ApprovalConflict, ApprovalRecord


class ApprovalStore:
    def __init__(self, kv: KeyValue) -> None:
        self.kv = kv

    @classmethod
    async def open(cls, js: JetStreamContext, bucket: str) -> ApprovalStore:
        return cls(await open_key_value(js, bucket, history=5))

    async def get(self, approval_id: str) -> tuple[ApprovalRecord, int] | None:
        try:
            entry = await self.kv.get(approval_id)
        except KeyNotFoundError:
            return None
        if entry.value is None:
            return None
        return ApprovalRecord.model_validate_json(entry.value), int(entry.revision or 0)

    async def create(self, record: ApprovalRecord) -> bool:
        """False when a record with this id already exists (a redelivered request)."""
        try:
            await self.kv.create(record.approval_id, record.model_dump_json().encode())
        except KeyWrongLastSequenceError:
            return False
        return True

    async def replace(self, record: ApprovalRecord, revision: int) -> int:
        try:
            return int(
                await self.kv.update(record.approval_id, record.model_dump_json().encode(), last=revision)
            )
        except KeyWrongLastSequenceError:
            raise ApprovalConflict(f"approval {record.approval_id} was decided concurrently") from None

    async def all(self) -> AsyncIterator[tuple[ApprovalRecord, int]]:
        keys: list[str] = []
        with contextlib.suppress(NoKeysError):
            keys = await self.kv.keys()
        for key in keys:
            found = await self.get(key)
            if found is not None:
                yield found
