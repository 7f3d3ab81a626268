"""Remediation intents in the kernel's record store (JetStream key-value), keyed by failure id.

The intent (with the run attempt seen before acting) is written before GitHub is called.
After a crash, the attempt number tells whether the call went through, so a redelivered
event neither repeats the action blindly nor forgets it.
"""

from __future__ import annotations

from enum import StrEnum

from nats.js import JetStreamContext
from pydantic import BaseModel, ConfigDict

from medic.bus import Bucket, Topology
from medic.events import ProposedAction
from medic.records import RecordStore


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


IntentStore = RecordStore[RemediationIntent]


async def open_intents(js: JetStreamContext, topology: Topology) -> IntentStore:
    return await RecordStore.open(js, topology.bucket(Bucket.REMEDIATIONS), RemediationIntent, history=3)
