"""Job log tails too large to travel inside an event, kept in a JetStream object store.

An event must stay under the server's max payload (1 MiB by default) whatever the number
of failed jobs, so the monitor sends a short tail inline and the full bounded tail by
reference (``FailedJob.log_ref``); the analyzer reads it back. Nothing beside the bus.
"""

from __future__ import annotations

from nats.js import JetStreamContext
from nats.js.errors import BucketNotFoundError, ObjectNotFoundError
from nats.js.object_store import ObjectStore


class LogNotFound(LookupError):
    pass


class LogStore:
    def __init__(self, store: ObjectStore) -> None:
        self.store = store

    @classmethod
    async def open(cls, js: JetStreamContext, bucket: str) -> LogStore:
        try:
            store = await js.object_store(bucket)
        except BucketNotFoundError:
            store = await js.create_object_store(bucket)
        return cls(store)

    async def put(self, failure_id: str, job_id: int, text: str) -> str:
        ref = f"{failure_id}/{job_id}"
        await self.store.put(ref, text.encode())
        return ref

    async def get(self, ref: str) -> str:
        try:
            result = await self.store.get(ref)
        except ObjectNotFoundError as exc:
            raise LogNotFound(ref) from exc
        return (result.data or b"").decode(errors="replace")


def inline_budget(job_count: int, *, total: int = 512 * 1024, floor: int = 1024) -> int:
    """Bytes of log tail each job may carry inside the event.

    GitHub runs at most 256 jobs per workflow run, so even then the tails add up to 512 KiB,
    leaving room under the 1 MiB default max payload for everything else.
    """
    return max(floor, total // max(1, job_count))
