"""The monitor's memory in JetStream KV: a cursor and a lease per repository, and what was reported.

The cursor (newest ``updated_at`` seen, the runs seen at exactly that second, the list's
ETag) lets a restarted or replaced monitor resume where the last one stopped, without
re-reporting. The lease (holder and expiry, written with compare-and-set on the entry's
revision) lets several replicas share the repositories: a replica polls a repository only
while it holds its lease, and a lease nobody renews simply runs out.

Everything read back is validated by the kernel's record store; a value that is not ours is
treated as absent, never a crash.
"""

from __future__ import annotations

import time
from datetime import datetime

from nats.js import JetStreamContext
from pydantic import BaseModel, ConfigDict

from medic.bus import Bucket, Topology
from medic.records import RecordConflict, RecordStore, hashed_key
from medic.telemetry import logger

log = logger(__name__)


class Cursor(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    repository: str
    updated_at: datetime
    """Newest ``updated_at`` among the completed runs seen so far."""
    seen_at_boundary: tuple[str, ...] = ()
    """Run attempts seen whose ``updated_at`` equals the cursor: GitHub stamps to the second."""
    last_run_id: int = 0
    etag: str | None = None
    recent: tuple[str, ...] = ()
    """Failed attempts already seen within ``LATE_WINDOW`` before the cursor: a run can show up
    stamped a little before a run already seen (listing is not instantaneous), and is then
    still found once, not skipped (``make chaos`` lost such runs)."""


class Lease(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    holder: str
    expires_at: float


class PollState:
    """Cursors and leases of one monitor deployment (one bucket, shared by its replicas)."""

    def __init__(self, cursors: RecordStore[Cursor], leases: RecordStore[Lease]) -> None:
        self.cursors = cursors
        self.leases = leases

    @classmethod
    async def open(cls, js: JetStreamContext, topology: Topology) -> PollState:
        bucket = topology.bucket(Bucket.MONITOR_CURSORS)
        return cls(await RecordStore.open(js, bucket, Cursor), await RecordStore.open(js, bucket, Lease))

    async def cursor(self, repository: str) -> Cursor | None:
        found = await self.cursors.get(hashed_key("cursor", repository))
        if found is None:
            return None
        if found.record.repository.lower() != repository.lower():
            log.warning("poll_cursor_foreign", repository=repository, found=found.record.repository)
            return None
        return found.record

    async def save(self, cursor: Cursor) -> None:
        await self.cursors.put(hashed_key("cursor", cursor.repository), cursor)

    async def acquire(self, repository: str, holder: str, seconds: float) -> bool:
        """True when ``holder`` now holds the repository's lease for ``seconds``.

        A lease is taken only once the previous one has run out, even by its own holder, so
        the repositories of each interval go to whichever replica comes first: work spreads.
        An unreadable lease counts as expired.
        """
        key = hashed_key("lease", repository)
        fresh = Lease(holder=holder, expires_at=time.time() + seconds)
        revision, current = await self.leases.read(key)
        if revision is None:
            return await self.leases.create(key, fresh) is not None
        if current is not None and current.record.expires_at > time.time():
            return False
        try:
            await self.leases.replace(key, fresh, revision)
        except RecordConflict:
            return False  # another replica wrote first
        return True


DETECTION_MEMORY_SECONDS = 14 * 24 * 3600.0
"""Longer than a run stays re-runnable and far longer than JetStream's duplicate window."""


class Detection(BaseModel):
    model_config = ConfigDict(frozen=True)

    event_id: str


class Detections:
    """Run attempts already reported as FailureDetected, by failure id.

    JetStream drops a republished event id only within its duplicate window (minutes); a
    webhook and a poll of the same attempt can be further apart than that, so the monitor
    also remembers what it reported, here, for two weeks.
    """

    def __init__(self, store: RecordStore[Detection]) -> None:
        self.store = store

    @classmethod
    async def open(cls, js: JetStreamContext, topology: Topology) -> Detections:
        bucket = topology.bucket(Bucket.MONITOR_DETECTED)
        return cls(await RecordStore.open(js, bucket, Detection, ttl=DETECTION_MEMORY_SECONDS))

    async def reported(self, failure_id: str) -> bool:
        return await self.store.get(f"run.{failure_id}") is not None

    async def remember(self, failure_id: str, event_id: str) -> None:
        await self.store.put(f"run.{failure_id}", Detection(event_id=event_id))
