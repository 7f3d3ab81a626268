"""The replay's own path against the reference, through a real stream: same views, same chain.

The replay reads the stream with its own reader (reply subject and payload straight from
nats-py's parser), decodes and projects in slices between the writer's round trips (or, for a
long stream, in a worker process), and writes set-based. The reference reads the same
stream through nats-py's ordinary pull consumer (headers parsed, metadata from ``Msg``) and
applies every message on the row path, one by one. A tangled history (duplicates, ties,
unreadable messages, values no column holds, published with and without headers) must give
equal views and chain links.
"""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from medic.bus import Bus
from medic.db import connect_pool
from medic.events import encode_event
from medic.services.projector import prepare_process
from medic.services.projector import replay as replay_module
from medic.services.projector.chain import verify_chain
from medic.services.projector.migrations import migrate
from medic.services.projector.replay import replay, table_digests
from medic.services.projector.store import Prepared, Received, apply_prepared
from medic.services.projector.unapplied import Unreadable, decode_or_unreadable
from tests.integration.test_projector_set_path import tangled_history

CHAIN = "SELECT array_agg((id, event_id, prev_hash, row_hash)::text ORDER BY id) FROM audit_log"


async def _publish_raw(bus: Bus, seed: int) -> int:
    """The tangled history's messages as bytes, every other one with headers (HMSG), no
    ``Nats-Msg-Id`` (the redelivered duplicates stay in the stream for the projector to drop)."""
    subject = bus.topology.subject("FailureDetected")
    items = tangled_history(seed)
    for i, (item, _, _) in enumerate(items):
        data = item.data if isinstance(item, Unreadable) else encode_event(item)  # type: ignore[arg-type]
        headers = {"Medic-Test": f"message {i}"} if i % 2 else None
        await bus.js.publish(subject, data, headers=headers)
    return len(items)


async def _reference_items(bus: Bus, count: int) -> list[Received]:
    """Every message as nats-py's own pull consumer gives it (the live projector's reading)."""
    psub = await bus.js.pull_subscribe(bus.topology.events_wildcard, durable="reference")
    items: list[Received] = []
    while len(items) < count:
        for msg in await psub.fetch(count - len(items), timeout=5):
            meta = msg.metadata
            items.append((decode_or_unreadable(msg.data), meta.sequence.stream, meta.timestamp))
            await msg.ack()
    await psub.unsubscribe()
    return items


@pytest.mark.parametrize(
    ("seed", "batch", "piece", "yield_after", "beside"),
    [
        (1, 120, 16, 0.0, False),
        (2, 7, 250, 0.002, False),
        (3, 1000, 33, 10.0, False),
        (4, 120, 16, 0.002, True),
        (5, 7, 64, 0.002, True),
    ],
)
async def test_replay_equals_the_row_path_read_by_nats_py(
    seed: int,
    batch: int,
    piece: int,
    yield_after: float,
    beside: bool,
    bus: Bus,
    database_url: str,
    db_schema: str,
    scratch_schema: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    count = await _publish_raw(bus, seed)
    reference = await connect_pool(database_url, db_schema, max_size=2)
    try:
        await migrate(reference)
        async with reference.acquire() as conn:
            await apply_prepared(conn, Prepared(await _reference_items(bus, count), None))
        monkeypatch.setattr(replay_module, "PIECE", piece)
        monkeypatch.setattr(replay_module, "YIELD_AFTER_SECONDS", yield_after)
        monkeypatch.setattr(prepare_process, "PARALLEL_FROM", 0 if beside else 10**9)
        report = await replay(bus, database_url, scratch_schema, live_schema=db_schema, batch=batch)
        assert report.events_read == count
        assert report.equal, (report.digests, report.live_digests)
        replayed = await connect_pool(database_url, scratch_schema, max_size=1)
        try:  # both applied the stream in its order, so even the chains are the same
            assert await replayed.fetchval(CHAIN) == await reference.fetchval(CHAIN)
            assert await table_digests(replayed) == await table_digests(reference)
            result = await verify_chain(replayed)
            assert result.ok, result
            assert {u.event_type for u in result.unapplied} >= {"Unreadable", "FailureDetected"}
        finally:
            await replayed.close()
    finally:
        await reference.close()


async def test_other_subscriptions_of_the_connection_keep_their_messages_and_headers(
    bus: Bus, database_url: str, scratch_schema: str
) -> None:
    count = await _publish_raw(bus, 4)
    got: list[tuple[str, dict[str, str] | None]] = []

    async def collect(msg: object) -> None:
        got.append((msg.data.decode(), msg.headers))  # type: ignore[attr-defined]

    probe = await bus.nc.subscribe(f"{bus.topology.prefix}-probe", cb=collect)
    try:
        replaying = asyncio.create_task(replay(bus, database_url, scratch_schema, batch=50))
        for i in range(20):  # while the replay reads, and after it
            await bus.nc.publish(f"{bus.topology.prefix}-probe", f"p{i}".encode(), headers={"K": str(i)})
            if i == 10:
                report = await replaying
            await asyncio.sleep(0)
        await bus.nc.flush()
        for _ in range(100):
            if len(got) == 20:
                break
            await asyncio.sleep(0.02)
    finally:
        with contextlib.suppress(Exception):
            await probe.unsubscribe()
    assert report.events_read == count
    assert got == [(f"p{i}", {"K": str(i)}) for i in range(20)]
