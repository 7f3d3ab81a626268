"""PostgreSQL going away for a while sends nothing to the dead letters (found by ``make chaos``).

The projector used to spend its five deliveries in a few seconds of a database restart and
dead-letter the events, which then never reached the audit trail.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import asyncpg

from medic.bus import Bus
from medic.embedded import EmbeddedPostgres
from medic.services.projector.service import ProjectorService
from tests.event_histories import mixed_histories


async def test_events_wait_out_a_database_restart_and_are_all_projected(bus: Bus, tmp_path: Path) -> None:
    pgdata = tmp_path / "pg" / "data"
    postgres = await asyncio.to_thread(EmbeddedPostgres.start, pgdata)
    await bus.ensure_streams()
    svc = ProjectorService(database_url=postgres.url, schema="medic", pool_size=2)
    await svc.start()
    sub = bus.subscribe("projector", svc.handle, concurrency=1, batch_handler=svc.handle_batch, max_deliver=5)
    await sub.start()
    try:
        await asyncio.to_thread(postgres.stop)
        events = mixed_histories(4, start=datetime(2025, 3, 1, 9, 0, tzinfo=UTC))
        await bus.publish_many(events)
        await asyncio.sleep(8)  # far more than five quick redeliveries
        postgres = await asyncio.to_thread(EmbeddedPostgres.start, pgdata)
        deadline = asyncio.get_running_loop().time() + 60
        while True:
            conn = await asyncpg.connect(postgres.url, server_settings={"search_path": "medic"})
            try:
                applied = await conn.fetchval("SELECT count(*) FROM projector_tracking")
            finally:
                await conn.close()
            if applied >= len(events) or asyncio.get_running_loop().time() > deadline:
                break
            await asyncio.sleep(0.3)
        assert applied == len(events)
        try:
            dead = (await bus.js.stream_info(bus.topology.dlq_stream)).state.messages
        except Exception:
            dead = 0
        assert dead == 0
    finally:
        await sub.stop()
        await svc.stop()
        await asyncio.to_thread(postgres.stop)
