"""Typed records in a JetStream key-value bucket: the one store every service keeps state in.

A record is a frozen pydantic model stored as JSON under a key. Writes are either plain
(``put``), create-if-absent (``create``: the first of two replicas wins) or compare-and-set
on the revision read (``replace``: a concurrent writer makes it raise
:class:`RecordConflict`). What is read back is validated; a value that is not ours (garbage,
an older format) is logged and treated as absent, never a crash.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError, NoKeysError
from nats.js.kv import KeyValue
from pydantic import BaseModel, ValidationError

from medic.bus import open_key_value
from medic.telemetry import logger

log = logger(__name__)
M = TypeVar("M", bound=BaseModel)


class RecordConflict(Exception):
    """Another writer changed the record since it was read (or, for :meth:`RecordStore.change`,
    kept changing it through every retry)."""


MAX_CHANGE_TRIES = 64


@dataclass(frozen=True)
class Versioned(Generic[M]):
    record: M
    revision: int


def hashed_key(kind: str, text: str) -> str:
    """KV keys are subject tokens; names with dots, spaces or unicode are hashed into one."""
    return f"{kind}.{hashlib.sha256(text.lower().encode()).hexdigest()[:40]}"


class RecordStore(Generic[M]):
    def __init__(self, kv: KeyValue, model: type[M], *, bucket: str = "") -> None:
        self.kv = kv
        self.model = model
        self.bucket = bucket

    @classmethod
    async def open(
        cls,
        js: JetStreamContext,
        bucket: str,
        model: type[M],
        *,
        history: int = 1,
        ttl: float | None = None,
    ) -> RecordStore[M]:
        return cls(await open_key_value(js, bucket, history=history, ttl=ttl), model, bucket=bucket)

    async def get(self, key: str) -> Versioned[M] | None:
        _, found = await self.read(key)
        return found

    async def read(self, key: str) -> tuple[int | None, Versioned[M] | None]:
        """One read: the entry's revision whether or not it reads as a record (so that garbage
        can be overwritten by compare-and-set), and the record when it does."""
        try:
            entry = await self.kv.get(key)
        except KeyNotFoundError:
            return None, None
        if not entry.value:
            return None, None
        revision = int(entry.revision or 0)
        try:
            record = self.model.model_validate_json(entry.value)
        except ValidationError as exc:
            log.warning("record_unreadable", bucket=self.bucket, key=key, errors=exc.error_count())
            return revision, None
        return revision, Versioned(record, revision)

    async def create(self, key: str, record: M) -> int | None:
        """Write only if absent: the new revision, or None when the key already holds a record."""
        try:
            return int(await self.kv.create(key, record.model_dump_json().encode()))
        except KeyWrongLastSequenceError:
            return None

    async def replace(self, key: str, record: M, revision: int) -> int:
        """Compare-and-set: write only if the record is still at ``revision``."""
        try:
            return int(await self.kv.update(key, record.model_dump_json().encode(), last=revision))
        except KeyWrongLastSequenceError:
            raise RecordConflict(f"{key} changed since revision {revision}") from None

    async def change(self, key: str, step: Callable[[M | None], M | None]) -> tuple[M | None, M | None]:
        """Read, compute the next record, write it only if nobody wrote in between; else retry.

        ``step`` is pure (it may run several times). It returns the record to write, or None
        to write nothing. The result is ``(before, after)``; with no write, ``after`` is
        ``before``. Two replicas changing one record concurrently both end up applied, in
        some order, never one lost.
        """
        for _ in range(MAX_CHANGE_TRIES):
            revision, found = await self.read(key)
            before = found.record if found else None  # unreadable garbage counts as absent
            after = step(before)
            if after is None or after == before:
                return before, before
            try:
                if revision is not None:
                    await self.replace(key, after, revision)  # only if nobody wrote since we read
                elif not await self.create(key, after):
                    continue
            except RecordConflict:
                continue
            return before, after
        raise RecordConflict(f"{key}: {MAX_CHANGE_TRIES} concurrent writers in a row")

    async def delete(self, key: str) -> None:
        with contextlib.suppress(KeyNotFoundError):
            await self.kv.delete(key)

    async def put(self, key: str, record: M) -> int:
        return int(await self.kv.put(key, record.model_dump_json().encode()))

    async def keys(self, prefix: str = "") -> list[str]:
        """Keys starting with ``prefix`` (a bucket may hold several kinds of record, one per prefix)."""
        with contextlib.suppress(NoKeysError):
            return [key for key in await self.kv.keys() if key.startswith(prefix)]
        return []

    async def items(self, prefix: str = "") -> AsyncIterator[tuple[str, Versioned[M]]]:
        for key in await self.keys(prefix):
            found = await self.get(key)
            if found is not None:
                yield key, found
