"""Remediation intents in a JetStream key-value bucket.

The intent (with the run attempt seen before acting) is written before GitHub is called.
After a crash, the attempt number tells whether the call went through, so a redelivered
event neither repeats the action blindly nor forgets it.
"""

from __future__ import annotations

import contextlib
from enum import StrEnum

from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue
from pydantic import BaseModel, ConfigDict

from medic.bus import open_key_value
from medic.events import ProposedAction


class IntentState(StrEnum):
    INTENDED = "intended"
    SENT = "sent"
    FINISHED = "finished"


class RemediationIntent(BaseModel):
    model_config = ConfigDict(frozen=True)

    failure_id: str
    repository: str
    run_id: int
    action: ProposedAction
    baseline_attempt: int
    state: IntentState = IntentState.INTENDED
    detail: str = ""
    approved_by: str | None = None
    checks_ref: str | None = None
    """For a fix pull request: the head commit whose checks verify it."""


class IntentStore:
    def __init__(self, kv: KeyValue) -> None:
        self.kv = kv

    @classmethod
    async def open(cls, js: JetStreamContext, bucket: str) -> IntentStore:
        return cls(await open_key_value(js, bucket, history=3))

    async def get(self, failure_id: str) -> RemediationIntent | None:
        with contextlib.suppress(KeyNotFoundError):
            entry = await self.kv.get(failure_id)
            if entry.value:
                return RemediationIntent.model_validate_json(entry.value)
        return None

    async def create(self, intent: RemediationIntent) -> bool:
        """False when an intent for this failure already exists (another handler got there first)."""
        try:
            await self.kv.create(intent.failure_id, intent.model_dump_json().encode())
        except KeyWrongLastSequenceError:
            return False
        return True

    async def put(self, intent: RemediationIntent) -> None:
        await self.kv.put(intent.failure_id, intent.model_dump_json().encode())
