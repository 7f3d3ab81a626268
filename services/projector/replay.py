"""Rebuild every view from the event stream and prove it equals the live one.

The stream is the source of truth; the views are a cache of it. Replaying from sequence 1
into a fresh schema with an ephemeral consumer (no ack, nothing left behind on the server)
and comparing per-table digests shows the live views hold exactly what the events say.
Digests skip what legitimately differs between two builds: surrogate ids, chain hashes
(the chain follows arrival order) and applied-at times.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hashlib
from collections import deque
from collections.abc import AsyncIterator, Iterator, Sequence
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from datetime import datetime
from time import perf_counter
from typing import overload

import asyncpg

from medic.bus import Bus
from medic.db import connect_pool
from medic.services.projector import prepare_process
from medic.services.projector.batch import Entry
from medic.services.projector.instruments import PROJECTION_BATCH
from medic.services.projector.migrations import migrate
from medic.services.projector.prepare_process import (
    HEAP_GROWTH_OBJECTS,
    prepare_packed,
    received_until,
    unpack,
    worker,
)
from medic.services.projector.store import Prepared, Received, apply_prepared, prepare
from medic.services.projector.stream_reader import ReadGap, StreamMessage, read_stream

DIGEST_QUERIES: dict[str, str] = {
    "audit_log": "SELECT (event_id, occurred_at, actor, action, outcome, failure_id, repository,"
    " details)::text FROM audit_log ORDER BY event_id",
    "failures": "SELECT f::text FROM failures f ORDER BY failure_id",
    "projector_tracking": "SELECT (consumer, event_id, stream_seq, event_type, occurred_at)::text"
    " FROM projector_tracking ORDER BY consumer, event_id",
}


class ReplayError(Exception):
    """The replay cannot run safely (e.g. the target schema already holds views)."""


@dataclass
class ReplayReport:
    target_schema: str
    events_read: int = 0
    events_applied: int = 0
    last_stream_seq: int = 0
    until: datetime | None = None
    seconds: float = 0.0
    digests: dict[str, str] = field(default_factory=dict)
    live_digests: dict[str, str] | None = None

    @property
    def equal(self) -> bool | None:
        """Whether the rebuilt views equal the live ones (None when nothing was compared)."""
        return None if self.live_digests is None else self.digests == self.live_digests

    @property
    def events_per_second(self) -> float:
        return self.events_read / self.seconds if self.seconds else 0.0


async def table_digests(pool: asyncpg.Pool) -> dict[str, str]:
    """sha256 per view over a canonical row order, ``<rows>:<hex>``."""
    digests: dict[str, str] = {}
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        await conn.execute("SET LOCAL TimeZone = 'UTC'")
        for table, sql in DIGEST_QUERIES.items():
            h, rows = hashlib.sha256(), 0
            async for record in conn.cursor(sql, prefetch=5000):
                h.update(record[0].encode())
                h.update(b"\n")
                rows += 1
            digests[table] = f"{rows}:{h.hexdigest()}"
    return digests


async def replay(
    bus: Bus,
    database_url: str,
    target_schema: str,
    *,
    until: datetime | None = None,
    live_schema: str | None = None,
    batch: int = 5000,
) -> ReplayReport:
    """Rebuild the views into ``target_schema`` (which must hold no views yet) and compare."""
    report = ReplayReport(target_schema=target_schema, until=until)
    pool = await connect_pool(database_url, target_schema, max_size=2)
    try:
        if await pool.fetchval("SELECT to_regclass('audit_log') IS NOT NULL"):
            raise ReplayError(f"schema {target_schema!r} already holds views; replay needs a fresh one")
        await migrate(pool)
        started = perf_counter()
        with _collect_on_growth():
            await _pump(bus, pool, report, batch=batch)
        report.seconds = perf_counter() - started
        report.digests = await table_digests(pool)
    finally:
        await pool.close()
    if live_schema is not None:
        live = await connect_pool(database_url, live_schema, max_size=1)
        try:
            report.live_digests = await table_digests(live)
        finally:
            await live.close()
    return report


@contextlib.contextmanager
def _collect_on_growth() -> Iterator[None]:
    """Run the cyclic collector only when the heap has grown, not every few thousand allocations.

    A replay keeps a few batches of decoded events, entries and rows alive at once (hundreds
    of thousands of objects) and frees them by reference counting: they form no cycles (a
    200,000-event replay left 14 unreachable objects). With the default thresholds the
    collector scanned those live batches again and again, a tenth of the replay's CPU even
    with the first threshold at 50,000. CPython counts a generation's allocations *minus* its
    deallocations, so a first threshold of :data:`HEAP_GROWTH_OBJECTS` means: collect when
    that many more objects are alive than at the last collection. A replay in its steady
    state never gets there; a leak of cycles would, and is collected then.
    """
    thresholds = gc.get_threshold()
    gc.collect()
    gc.set_threshold(HEAP_GROWTH_OBJECTS, 10, 10)
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)


async def _pump(bus: Bus, pool: asyncpg.Pool, report: ReplayReport, *, batch: int) -> None:
    """Read, decode and project batch k+1 while PostgreSQL writes batch k; in a long replay
    the decoding and projecting happen in a second process (see :mod:`.prepare_process`)."""
    queue: asyncio.Queue[Prepared | None] = asyncio.Queue(maxsize=2)
    messages = (await bus.js.stream_info(bus.topology.stream)).state.messages
    beside = messages >= prepare_process.PARALLEL_FROM
    reader = asyncio.create_task(_read(bus, queue, report, batch=batch, beside=beside))
    try:
        async with pool.acquire() as conn:
            while (prepared := await queue.get()) is not None:
                report.events_applied += await apply_prepared(conn, prepared)
                PROJECTION_BATCH.observe(len(prepared.items))
        await reader
    finally:
        if not reader.done():
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader


PIECE = 64
"""Messages decoded and projected in one call of :func:`prepare`."""

YIELD_AFTER_SECONDS = 0.002
"""How long the reader may hold the event loop before it lets the writer go on.

The writer's transaction is a dozen round trips to PostgreSQL per batch; each time one
returns, the writer waits until the reader yields. Yielding after a fixed count of messages
(250) let it wait up to 15 ms a round trip while PostgreSQL sat idle: 200,000 events took
27.9 s, of which the reader spent 8.6 s blocked on a full queue. Yielding on time, not on a
count, bounds that wait whatever an event costs to decode; much more often (0.5 ms) and the
loop's own turns cost more than the wait saved."""


async def _read(
    bus: Bus, queue: asyncio.Queue[Prepared | None], report: ReplayReport, *, batch: int, beside: bool
) -> None:
    try:
        async with contextlib.aclosing(read_stream(bus, batch=batch)) as chunks:
            if beside:
                await _prepare_beside(chunks, queue, report)
            else:
                async for chunk in chunks:
                    _count(chunk, report)
                    prepared = await _prepare_chunk(chunk, report.until)
                    if prepared.items:
                        await queue.put(prepared)
    except asyncio.CancelledError:
        raise  # the writer stopped: nobody is left to read an end marker
    except ReadGap as exc:
        await queue.put(None)
        raise ReplayError(f"the replay lost a message of the stream: {exc}") from exc
    except BaseException:
        await queue.put(None)
        raise
    await queue.put(None)


def _count(chunk: list[StreamMessage], report: ReplayReport) -> None:
    report.events_read += len(chunk)
    report.last_stream_seq = chunk[-1].seq


IN_WORKER = 2
"""Chunks handed to the worker process before the oldest is awaited: one it prepares, one
waiting, so it never idles while the reader unpacks and queues the one before."""


async def _prepare_beside(
    chunks: AsyncIterator[list[StreamMessage]], queue: asyncio.Queue[Prepared | None], report: ReplayReport
) -> None:
    """Chunks prepared by the worker process, queued for the writer in stream order."""
    loop = asyncio.get_running_loop()
    in_worker: deque[tuple[list[StreamMessage], asyncio.Future[tuple[int, bytes | None]]]] = deque()

    async def queue_oldest() -> None:
        chunk, future = in_worker.popleft()
        count, packed = await future
        if packed is None:  # some message cannot be projected: the row path, from here
            prepared = await _prepare_chunk(chunk, report.until)
        else:
            prepared = Prepared(DecodedLater(chunk, report.until, count), unpack(packed))
        if count:
            await queue.put(prepared)

    with worker() as pool:
        try:
            async for chunk in chunks:
                _count(chunk, report)
                in_worker.append((chunk, loop.run_in_executor(pool, prepare_packed, chunk, report.until)))
                if len(in_worker) >= IN_WORKER:
                    await queue_oldest()
            while in_worker:
                await queue_oldest()
        except BrokenProcessPool as exc:  # killed (out of memory, a signal): nothing was written for it
            raise ReplayError(f"the replay's worker process stopped: {exc}") from exc
        finally:
            for _, future in in_worker:
                future.cancel()


class DecodedLater(Sequence[Received]):
    """A chunk's received messages, decoded in this process only if somebody reads them: the
    writer does only when the batch falls back to the row path."""

    def __init__(self, chunk: list[StreamMessage], until: datetime | None, count: int) -> None:
        self._chunk, self._until, self._count = chunk, until, count
        self._items: list[Received] | None = None

    def __len__(self) -> int:
        return self._count

    @overload
    def __getitem__(self, index: int) -> Received: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[Received]: ...
    def __getitem__(self, index: int | slice) -> Received | Sequence[Received]:
        if self._items is None:
            self._items = received_until(self._chunk, self._until)
        return self._items[index]


async def _prepare_chunk(chunk: list[StreamMessage], until: datetime | None) -> Prepared:
    """:func:`prepare` of the chunk's messages up to ``until``, a piece at a time, yielding
    to the event loop every :data:`YIELD_AFTER_SECONDS`."""
    items: list[Received] = []
    entries: list[Entry] | None = []
    since = perf_counter()
    for start in range(0, len(chunk), PIECE):
        part = received_until(chunk[start : start + PIECE], until)
        items += part
        if entries is not None and part:
            entries = _extended(entries, prepare(part).entries)
        if perf_counter() - since >= YIELD_AFTER_SECONDS:
            await asyncio.sleep(0)
            since = perf_counter()
    return Prepared(items, entries)


def _extended(entries: list[Entry], more: list[Entry] | None) -> list[Entry] | None:
    """None (the whole batch goes the row path, as :func:`prepare` decides) once a slice has none."""
    if more is None:
        return None
    entries += more
    return entries
