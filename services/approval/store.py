"""Approval records in the kernel's record store (a JetStream key-value bucket), keyed by approval id.

Shared by every approval replica. Decisions are written with compare-and-set on the revision
read, so two people pressing Approve and Reject at once give one decision and one clear
conflict.
"""

from __future__ import annotations

from nats.js import JetStreamContext

from medic.bus import Bucket, Topology
from medic.records import RecordStore
from medic.services.approval.records import ApprovalRecord

ApprovalStore = RecordStore[ApprovalRecord]


async def open_approvals(js: JetStreamContext, topology: Topology) -> ApprovalStore:
    return await RecordStore.open(js, topology.bucket(Bucket.APPROVALS), ApprovalRecord, history=5)
