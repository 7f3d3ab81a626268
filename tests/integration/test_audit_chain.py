"""Tamper evidence and migrations against a real PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime

import asyncpg
import pytest

from medic.db import connect_pool
from medic.services.projector.chain import row_hash, verify_chain
from medic.services.projector.migrations import (
    MigrationError,
    applied_migrations,
    bundled_migrations,
    migrate,
)
from medic.services.projector.store import apply_events
from tests.event_histories import mixed_histories

START = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
async def pool(database_url: str, db_schema: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await connect_pool(database_url, db_schema, max_size=4)
    yield pool
    await pool.close()


@pytest.fixture
async def chained(pool: asyncpg.Pool) -> asyncpg.Pool:
    """Twelve failures applied one event per transaction, from four writers at once."""
    await migrate(pool)
    events = mixed_histories(12, start=START)

    async def writer(part: int) -> None:
        async with pool.acquire() as conn:
            for seq, event in list(enumerate(events, 1))[part::4]:
                await apply_events(conn, [(event, seq)])  # type: ignore[list-item]

    await asyncio.gather(*(writer(i) for i in range(4)))
    return pool


async def test_an_untouched_chain_verifies(chained: asyncpg.Pool) -> None:
    result = await verify_chain(chained)
    assert result.ok and result.rows_checked == await chained.fetchval("SELECT count(*) FROM audit_log")


async def test_altered_row_is_named(chained: asyncpg.Pool) -> None:
    # concatenated, so the change is real whatever outcome row 9 got from the racing writers
    await chained.execute("UPDATE audit_log SET outcome = outcome || ' (edited)' WHERE id = 9")
    result = await verify_chain(chained)
    assert (result.ok, result.problem, result.row_id) == (False, "altered", 9)


async def test_altered_and_rehashed_row_is_named_by_the_broken_link(chained: asyncpg.Pool) -> None:
    row = await chained.fetchrow("SELECT * FROM audit_log WHERE id = 20")
    assert row is not None
    content = {k: v for k, v in dict(row).items() if k not in ("prev_hash", "row_hash")}
    content["actor"] = "mallory"
    forged_hash = row_hash(row["prev_hash"], **content)
    await chained.execute("UPDATE audit_log SET actor = 'mallory', row_hash = $1 WHERE id = 20", forged_hash)
    result = await verify_chain(chained)
    assert (result.problem, result.row_id) == ("altered", 20)
    assert "row 21" in result.detail


async def test_deleted_rows_are_named(chained: asyncpg.Pool) -> None:
    await chained.execute("DELETE FROM audit_log WHERE id = 17")
    result = await verify_chain(chained)
    assert (result.ok, result.problem, result.row_id) == (False, "deleted", 17)


async def test_deleting_the_last_row_is_seen_from_the_chain_head(chained: asyncpg.Pool) -> None:
    last = await chained.fetchval("SELECT max(id) FROM audit_log")
    await chained.execute("DELETE FROM audit_log WHERE id = $1", last)
    result = await verify_chain(chained)
    assert (result.problem, result.row_id) == ("deleted", last)


async def test_inserted_row_is_named(chained: asyncpg.Pool) -> None:
    last = await chained.fetchrow("SELECT * FROM audit_log ORDER BY id DESC LIMIT 1")
    assert last is not None
    forged = dict(last)
    forged.update(id=last["id"] + 1, event_id="forged", prev_hash=last["row_hash"], outcome="succeeded")
    columns = ", ".join(forged)
    values = ", ".join(f"${i}" for i in range(1, len(forged) + 1))
    sql = f"INSERT INTO audit_log ({columns}) VALUES ({values})"  # noqa: S608 - the table's own column names
    await chained.execute(sql, *forged.values())
    result = await verify_chain(chained)
    assert (result.ok, result.problem, result.row_id) == (False, "inserted", last["id"] + 1)


async def test_migrations_apply_once_and_are_idempotent(
    pool: asyncpg.Pool, database_url: str, db_schema: str
) -> None:
    others = [await connect_pool(database_url, db_schema, max_size=1) for _ in range(3)]
    try:
        results = await asyncio.gather(migrate(pool), *(migrate(p) for p in others))  # replicas racing
    finally:
        for other in others:
            await other.close()
    assert sorted(map(len, results)) == [0, 0, 0, len(bundled_migrations())]
    assert await migrate(pool) == []
    assert await applied_migrations(pool) == [f"{m.version:04d}_{m.name}" for m in bundled_migrations()]


async def test_a_changed_released_migration_is_refused(pool: asyncpg.Pool) -> None:
    await migrate(pool)
    edited = [replace(m, sql=m.sql + "\n-- edited\n") if m.version == 1 else m for m in bundled_migrations()]
    with pytest.raises(MigrationError, match="changed after it was applied"):
        await migrate(pool, edited)
    with pytest.raises(MigrationError, match="does not know"):
        await migrate(pool, [])
