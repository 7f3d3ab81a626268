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
import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from time import perf_counter

import asyncpg
import nats.errors
from nats.js import api as js_api

from medic.bus import Bus
from medic.db import connect_pool
from medic.services.projector.instruments import PROJECTION_BATCH
from medic.services.projector.migrations import migrate
from medic.services.projector.store import Received, apply_or_record
from medic.services.projector.unapplied import Unreadable, decode_or_unreadable

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
    batch: int = 512,
) -> ReplayReport:
    """Rebuild the views into ``target_schema`` (which must hold no views yet) and compare."""
    report = ReplayReport(target_schema=target_schema, until=until)
    pool = await connect_pool(database_url, target_schema, max_size=2)
    try:
        if await pool.fetchval("SELECT to_regclass('audit_log') IS NOT NULL"):
            raise ReplayError(f"schema {target_schema!r} already holds views; replay needs a fresh one")
        await migrate(pool)
        started = perf_counter()
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


async def _pump(bus: Bus, pool: asyncpg.Pool, report: ReplayReport, *, batch: int) -> None:
    """Fetch and apply concurrently: the next batch is on its way while one is written."""
    queue: asyncio.Queue[list[Received] | None] = asyncio.Queue(maxsize=4)
    reader = asyncio.create_task(_read(bus, queue, report, batch=batch))
    try:
        async with pool.acquire() as conn:
            while (items := await queue.get()) is not None:
                report.events_applied += await apply_or_record(conn, items)
                PROJECTION_BATCH.observe(len(items))
        await reader
    finally:
        if not reader.done():
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader


async def _read(
    bus: Bus, queue: asyncio.Queue[list[Received] | None], report: ReplayReport, *, batch: int
) -> None:
    stream = bus.topology.stream
    info = await bus.js.stream_info(stream)
    if info.state.messages == 0:
        await queue.put(None)
        return
    config = js_api.ConsumerConfig(
        ack_policy=js_api.AckPolicy.NONE,
        deliver_policy=js_api.DeliverPolicy.ALL,
        inactive_threshold=60.0,
        mem_storage=True,
    )
    psub = await bus.js.pull_subscribe(bus.topology.events_wildcard, stream=stream, config=config)
    try:
        pending = 1
        while pending:
            try:
                msgs = await psub.fetch(batch=batch, timeout=2.0)
            except (TimeoutError, nats.errors.TimeoutError):
                break  # nothing more arrived: the stream's end was reached
            items: list[Received] = []
            for msg in msgs:
                meta = msg.metadata
                pending = meta.num_pending
                report.events_read += 1
                report.last_stream_seq = meta.sequence.stream
                event = decode_or_unreadable(msg.data)
                at = event.occurred_at if not isinstance(event, Unreadable) else meta.timestamp
                if report.until is None or at <= report.until:
                    items.append((event, meta.sequence.stream, meta.timestamp))
            if items:
                await queue.put(items)
    finally:
        await queue.put(None)
        with contextlib.suppress(Exception):
            name = (await psub.consumer_info()).name
            await psub.unsubscribe()
            await bus.js.delete_consumer(stream, name)
