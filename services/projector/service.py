"""The projector: reads every event and keeps the audit trail and failure views in Postgres.

Wiring only. Mapping lives in :mod:`.projection`, SQL in :mod:`.store` and :mod:`.queries`,
HTTP in :mod:`.api`. Start-up migrates the schema (refusing a changed released migration)
before the consumer delivers the first event.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, ClassVar

import asyncpg
from fastapi import APIRouter

from medic.bus import Delivery
from medic.config import Settings
from medic.db import connect_pool
from medic.events import Event
from medic.runtime import EVERY_EVENT, Service
from medic.services.projector.api import build_router
from medic.services.projector.instruments import PROJECTED_EVENTS, PROJECTION_BATCH, PROJECTION_LAG
from medic.services.projector.migrations import migrate
from medic.services.projector.store import CONSUMER, Received, apply_or_record
from medic.services.projector.unapplied import Unreadable, decode_or_unreadable
from medic.telemetry import logger

log = logger(__name__)

OUTAGE_PATIENCE_SECONDS = 900.0
"""How long one delivery waits for PostgreSQL before giving up (and being redelivered)."""
DATABASE_AWAY: tuple[type[BaseException], ...] = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.OperatorInterventionError,  # shutting down, cannot connect now
)


class ProjectorService(Service):
    name: ClassVar[str] = CONSUMER
    consumes = EVERY_EVENT
    concurrency: ClassVar[int] = 1
    """One at a time: the audit chain then follows stream order, which is causal order per failure."""

    def __init__(self, *, database_url: str, schema: str = "medic", pool_size: int = 10) -> None:
        self.database_url = database_url
        self.schema = schema
        self.pool_size = pool_size
        self._pool: asyncpg.Pool | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> ProjectorService:
        if not settings.database_url:
            raise ValueError("the projector needs a database: set DATABASE_URL")
        return cls(database_url=settings.database_url, schema=settings.db_schema)

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("the projector is not started")
        return self._pool

    async def start(self) -> None:
        self._pool = await connect_pool(self.database_url, self.schema, max_size=self.pool_size)
        applied = await migrate(self._pool)
        log.info("projector_started", schema=self.schema, migrations_applied=applied)

    async def stop(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()

    def ready(self) -> bool:
        return self._pool is not None

    def decoder(self) -> Callable[[bytes], Any]:
        return decode_or_unreadable

    async def handle(self, event: Event | Unreadable, delivery: Delivery) -> None:
        applied = await self._through_outages([_received(event, delivery)], [delivery])
        PROJECTED_EVENTS.labels("applied" if applied else "duplicate").inc()
        PROJECTION_BATCH.observe(1)
        PROJECTION_LAG.set(delivery.msg.metadata.num_pending or 0)

    async def handle_batch(self, items: list[tuple[Event | Unreadable, Delivery]]) -> None:  # type: ignore[override]
        """A backlog in one transaction (the chain lock is taken once, not per event)."""
        received = [_received(event, delivery) for event, delivery in items]
        applied = await self._through_outages(received, [delivery for _, delivery in items])
        PROJECTED_EVENTS.labels("applied").inc(applied)
        PROJECTED_EVENTS.labels("duplicate").inc(len(items) - applied)
        PROJECTION_BATCH.observe(len(items))
        PROJECTION_LAG.set(items[-1][1].msg.metadata.num_pending or 0)

    async def _through_outages(self, received: list[Received], deliveries: list[Delivery]) -> int:
        """Apply, waiting out a database outage inside the handler (keeping the messages ours with
        ``in_progress``) instead of spending redeliveries: a PostgreSQL restart must not send
        events to the dead letters, where the audit trail would never see them."""
        waited, pause = 0.0, 0.5
        while True:
            try:
                async with self.pool.acquire() as conn:
                    return await apply_or_record(conn, received)
            except DATABASE_AWAY as exc:
                if waited >= OUTAGE_PATIENCE_SECONDS:
                    raise
                log.warning(
                    "projector_waiting_for_database", waited_seconds=round(waited, 1), error=repr(exc)
                )
                for delivery in deliveries:
                    with contextlib.suppress(Exception):  # the bus may be away too; redelivery then
                        await delivery.in_progress()
                await asyncio.sleep(pause)
                waited, pause = waited + pause, min(pause * 2, 5.0)

    def router(self) -> APIRouter:
        return build_router(lambda: self.pool)


def _received(item: Event | Unreadable, delivery: Delivery) -> Received:
    stamped = delivery.msg.metadata.timestamp
    return item, delivery.stream_seq, stamped if stamped is not None else datetime.now(UTC)
