"""The poller's memory in JetStream KV: a cursor and a lease per repository.

The cursor (newest ``updated_at`` seen, the runs seen at exactly that second, the list's
ETag) lets a restarted or replaced monitor resume where the last one stopped, without
re-reporting. The lease (holder and expiry, written with compare-and-set on the entry's
revision) lets several replicas share the repositories: a replica polls a repository only
while it holds its lease, and a lease nobody renews simply runs out.

Everything read back is validated; a value that is not ours (garbage, an old format) is
logged and treated as absent, never a crash.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from datetime import datetime

from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue
from pydantic import BaseModel, ConfigDict, ValidationError

from medic.bus import open_key_value
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


class Lease(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    holder: str
    expires_at: float


def repository_key(kind: str, repository: str) -> str:
    """KV keys are subject tokens; repository names may hold dots and leading dots, so hash them."""
    return f"{kind}.{hashlib.sha256(repository.lower().encode()).hexdigest()[:40]}"


async def open_bucket(js: JetStreamContext, bucket: str, *, ttl: float | None = None) -> KeyValue:
    return await open_key_value(js, bucket, ttl=ttl)


class PollState:
    """Cursors and leases of one monitor deployment (one bucket, shared by its replicas)."""

    def __init__(self, kv: KeyValue) -> None:
        self.kv = kv

    async def cursor(self, repository: str) -> Cursor | None:
        key = repository_key("cursor", repository)
        with contextlib.suppress(KeyNotFoundError):
            entry = await self.kv.get(key)
            if not entry.value:
                return None
            try:
                cursor = Cursor.model_validate_json(entry.value)
            except ValidationError as exc:
                log.warning("poll_cursor_unreadable", repository=repository, errors=exc.error_count())
                return None
            if cursor.repository.lower() != repository.lower():
                log.warning("poll_cursor_foreign", repository=repository, found=cursor.repository)
                return None
            return cursor
        return None

    async def save(self, cursor: Cursor) -> None:
        await self.kv.put(repository_key("cursor", cursor.repository), cursor.model_dump_json().encode())

    async def acquire(self, repository: str, holder: str, seconds: float) -> bool:
        """True when ``holder`` now holds the repository's lease for ``seconds``.

        A lease is taken only once the previous one has run out, even by its own holder, so
        the repositories of each interval go to whichever replica comes first: work spreads.
        """
        key = repository_key("lease", repository)
        fresh = Lease(holder=holder, expires_at=time.time() + seconds).model_dump_json().encode()
        try:
            entry = await self.kv.get(key)
        except KeyNotFoundError:
            entry = None
        try:
            if entry is None or not entry.value:
                await self.kv.create(key, fresh)
                return True
            current = _lease_of(entry.value)
            if current is not None and current.expires_at > time.time():
                return False
            await self.kv.update(key, fresh, last=entry.revision)
            return True
        except KeyWrongLastSequenceError:
            return False  # another replica wrote first


def _lease_of(value: bytes) -> Lease | None:
    try:
        return Lease.model_validate_json(value)
    except ValidationError:
        return None  # unreadable: as good as expired


DETECTION_MEMORY_SECONDS = 14 * 24 * 3600.0
"""Longer than a run stays re-runnable and far longer than JetStream's duplicate window."""


class Detections:
    """Run attempts already reported as FailureDetected.

    JetStream drops a republished event id only within its duplicate window (minutes); a
    webhook and a poll of the same attempt can be further apart than that, so the monitor
    also remembers what it reported, here, for two weeks.
    """

    def __init__(self, kv: KeyValue) -> None:
        self.kv = kv

    async def reported(self, dedup_key: str) -> bool:
        with contextlib.suppress(KeyNotFoundError):
            entry = await self.kv.get(_detection_key(dedup_key))
            return bool(entry.value)
        return False

    async def remember(self, dedup_key: str, event_id: str) -> None:
        await self.kv.put(_detection_key(dedup_key), event_id.encode())


def _detection_key(dedup_key: str) -> str:
    return "run." + hashlib.sha256(dedup_key.lower().encode()).hexdigest()[:40]
