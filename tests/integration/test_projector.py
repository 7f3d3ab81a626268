"""The projector against the real nats-server and PostgreSQL: views, idempotency, replay."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta

import pytest

from medic.bus import Bus
from medic.db import connect_pool
from medic.events import Envelope
from medic.services.projector import prepare_process
from medic.services.projector.chain import verify_chain
from medic.services.projector.replay import ReplayError, replay, table_digests
from medic.services.projector.service import ProjectorService
from medic.services.projector.store import apply_events
from tests.event_histories import PATHS, mixed_histories

START = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
EXPECTED_STATE = {
    "auto_ok": "remediated",
    "auto_fail": "remediation_failed",
    "approved_ok": "remediated",
    "rejected": "rejected",
    "expired": "expired",
    "no_action": "no_action",
}


@pytest.fixture
async def projector(database_url: str, db_schema: str) -> AsyncIterator[ProjectorService]:
    svc = ProjectorService(database_url=database_url, schema=db_schema, pool_size=4)
    await svc.start()
    yield svc
    await svc.stop()


async def project_through_bus(
    bus: Bus, svc: ProjectorService, events: Sequence[Envelope], *, durable: str = "projector", seen: int
) -> None:
    """Run the service's handler on its durable consumer until ``seen`` events are tracked."""
    sub = bus.subscribe(durable, svc.handle, concurrency=svc.concurrency)
    await sub.start()
    if events:
        await bus.publish_many(events)
    deadline = asyncio.get_running_loop().time() + 20
    while await svc.pool.fetchval("SELECT count(*) FROM projector_tracking") < seen:
        assert asyncio.get_running_loop().time() < deadline, "projection did not catch up"
        await asyncio.sleep(0.05)
    while await bus.pending(durable):
        assert asyncio.get_running_loop().time() < deadline, "consumer did not drain"
        await asyncio.sleep(0.05)
    await sub.stop()


async def test_mixed_failures_are_projected_through_the_bus(bus: Bus, projector: ProjectorService) -> None:
    events = mixed_histories(2 * len(PATHS), start=START)
    await project_through_bus(bus, projector, events, seen=len(events))

    rows = await projector.pool.fetch(
        "SELECT run_id, state, settled_at, detected_at FROM failures ORDER BY run_id"
    )
    assert [r["state"] for r in rows] == [EXPECTED_STATE[PATHS[i % len(PATHS)]] for i in range(len(rows))]
    assert all(r["settled_at"] is not None and r["detected_at"] is not None for r in rows)
    assert await projector.pool.fetchval("SELECT count(*) FROM audit_log") == len(events)
    result = await verify_chain(projector.pool)
    assert result.ok, result


async def test_redelivering_every_event_twice_changes_no_view(bus: Bus, projector: ProjectorService) -> None:
    events = mixed_histories(len(PATHS), start=START)
    await project_through_bus(bus, projector, events, seen=len(events))
    before = await table_digests(projector.pool)
    for again in ("projector-again-1", "projector-again-2"):  # fresh durables deliver everything again
        await project_through_bus(bus, projector, [], durable=again, seen=len(events))
    assert await table_digests(projector.pool) == before
    assert (await verify_chain(projector.pool)).ok


async def test_out_of_order_application_gives_the_same_views(
    database_url: str, db_schema: str, scratch_schema: str
) -> None:
    events = mixed_histories(len(PATHS), start=START)
    digests = []
    for schema, ordered in ((db_schema, events), (scratch_schema, list(reversed(events)))):
        svc = ProjectorService(database_url=database_url, schema=schema, pool_size=2)
        await svc.start()
        async with svc.pool.acquire() as conn:
            for seq, event in sorted(enumerate(events, 1), key=lambda p: ordered.index(p[1])):
                await apply_events(conn, [(event, seq)])  # type: ignore[list-item]
        digests.append(await table_digests(svc.pool))
        await svc.stop()
    assert digests[0] == digests[1]


async def test_replay_rebuilds_views_equal_to_live(
    bus: Bus, projector: ProjectorService, database_url: str, scratch_schema: str
) -> None:
    events = mixed_histories(3 * len(PATHS), start=START)
    await project_through_bus(bus, projector, events, seen=len(events))
    report = await replay(bus, database_url, scratch_schema, live_schema=projector.schema, batch=7)
    assert report.events_read == len(events)
    assert report.equal, (report.digests, report.live_digests)
    replayed = await connect_pool(database_url, scratch_schema, max_size=1)
    try:  # the live projector applied the stream in order, so even the hash chains are the same
        chain = "SELECT array_agg(row_hash ORDER BY id) FROM audit_log"
        assert await replayed.fetchval(chain) == await projector.pool.fetchval(chain)
        assert (await verify_chain(replayed)).ok
    finally:
        await replayed.close()
    with pytest.raises(ReplayError):
        await replay(bus, database_url, scratch_schema)


@pytest.mark.parametrize("beside", [False, True], ids=["in process", "worker process"])
async def test_replay_until_stops_at_that_time(
    beside: bool, bus: Bus, database_url: str, scratch_schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    events = mixed_histories(len(PATHS), start=START)
    await bus.publish_many(events)
    until = START + timedelta(seconds=45)
    monkeypatch.setattr(prepare_process, "PARALLEL_FROM", 0 if beside else 10**9)
    report = await replay(bus, database_url, scratch_schema, until=until, batch=4)
    expected = [e for e in events if e.occurred_at <= until]
    assert report.events_applied == len(expected) < len(events)
    pool = await connect_pool(database_url, scratch_schema, max_size=1)
    try:
        assert await pool.fetchval("SELECT max(occurred_at) FROM audit_log") <= until
    finally:
        await pool.close()
