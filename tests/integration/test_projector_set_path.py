"""The set-based apply against the row path, on real PostgreSQL: same views, same chain.

The row path (a statement per row, one event per transaction) is the reference: each
tangled history below (duplicates, events out of causal order, conflicting and tied
versions, unreadable messages, values no column can hold, one of them overwritten later
in the same batch) goes through both, cut into batches at random, and every view, digest
and chain link must come out the same.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from medic.db import connect_pool
from medic.events import Envelope, FailureDetected, new_event_id
from medic.services.projector.chain import GENESIS_HASH, verify_chain
from medic.services.projector.merge import FAILURE_COLUMNS
from medic.services.projector.migrations import migrate
from medic.services.projector.replay import table_digests
from medic.services.projector.store import Prepared, Received, apply_or_record, apply_prepared
from medic.services.projector.unapplied import Unreadable
from tests.event_histories import PATHS, mixed_histories

START = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)


async def _migrated(database_url: str, schema: str) -> asyncpg.Pool:
    pool = await connect_pool(database_url, schema, max_size=2)
    await migrate(pool)
    return pool


@pytest.fixture
async def pools(
    database_url: str, db_schema: str, scratch_schema: str
) -> AsyncIterator[tuple[asyncpg.Pool, asyncpg.Pool]]:
    row, batch = await _migrated(database_url, db_schema), await _migrated(database_url, scratch_schema)
    yield row, batch
    await row.close()
    await batch.close()


def _version(event: Envelope, *, upper: bool = False, **payload: object) -> Envelope:
    """Another event about the same failure at the same time (same rank: a tie on event id,
    which PostgreSQL breaks by its collation; upper-case ids sort apart from lower-case ones
    in most collations other than C)."""
    changed = event.payload.model_copy(update=payload)  # type: ignore[attr-defined]
    event_id = new_event_id().upper() if upper else new_event_id()
    return event.model_copy(update={"event_id": event_id, "payload": changed})


def tangled_history(seed: int) -> list[Received]:
    rng = random.Random(seed)
    events: list[Envelope] = mixed_histories(2 * len(PATHS), start=START)
    detected = [e for e in events if isinstance(e, FailureDetected)]
    extra: list[Envelope] = []
    for e in rng.sample(detected, 4):  # conflicting versions, tied with the original on (rank, time)
        extra.append(_version(e, workflow_name=f"CI-{rng.randrange(100)}", branch="other"))
    last_of = {e.failure_id: e for e in events}  # the failure's final state: a tie there shows
    for e in rng.sample(sorted(last_of.values(), key=lambda e: e.event_id), 6):
        extra.append(_version(e, upper=rng.random() < 0.5))
    big = rng.choice(detected)
    extra.append(_version(big, run_attempt=2**40))  # no integer column holds it: unapplied...
    extra.append(_version(big, workflow_name="after the unstorable one"))  # ...even when overwritten
    extra.append(_version(rng.choice(detected), run_id=2**70))
    events += extra
    rng.shuffle(events)  # out of causal order, across failures and within them
    events += rng.sample(events, 10)  # redelivered duplicates
    items: list[Received] = [(e, 0, START) for e in events]
    for _ in range(3):
        junk = rng.choice([b"\x00not an event\xff", b'{"event_type":"FailureDetected"}', b"[]"])
        items.insert(rng.randrange(len(items)), (Unreadable(junk, "not an event"), 0, START))
    return [(item, seq, START + timedelta(milliseconds=seq)) for seq, (item, _, _) in enumerate(items, 1)]


async def _chain(pool: asyncpg.Pool) -> list[tuple[object, ...]]:
    rows = await pool.fetch("SELECT id, event_id, prev_hash, row_hash FROM audit_log ORDER BY id")
    return [tuple(r) for r in rows]


@pytest.mark.parametrize("seed", range(6))
async def test_set_based_batches_equal_the_row_path(
    seed: int, pools: tuple[asyncpg.Pool, asyncpg.Pool]
) -> None:
    row_pool, batch_pool = pools
    items = tangled_history(seed)
    rng = random.Random(seed)
    async with row_pool.acquire() as conn:
        row_new = await apply_prepared(conn, Prepared(items, None))  # None: the row path, one by one
    batch_new, at = 0, 0
    async with batch_pool.acquire() as conn:
        while at < len(items):
            size = rng.choice([1, 2, 7, 50, len(items)])
            batch_new += await apply_or_record(conn, items[at : at + size])
            at += size

    assert batch_new == row_new
    assert await table_digests(batch_pool) == await table_digests(row_pool)
    assert await _chain(batch_pool) == await _chain(row_pool)
    for pool in pools:
        result = await verify_chain(pool)
        assert result.ok, result
        assert {u.event_type for u in result.unapplied} >= {"Unreadable", "FailureDetected"}
    unapplied = await batch_pool.fetchval("SELECT count(*) FROM audit_log WHERE action = 'EventUnapplied'")
    assert unapplied == 2 + 3  # run_attempt and run_id out of range, three unreadable messages


async def test_applying_the_same_batch_again_changes_nothing(
    pools: tuple[asyncpg.Pool, asyncpg.Pool],
) -> None:
    _, pool = pools
    items = tangled_history(99)
    async with pool.acquire() as conn:
        first = await apply_or_record(conn, items)
        before = await table_digests(pool), await _chain(pool)
        assert await apply_or_record(conn, items) == 0
    assert first > 0
    assert (await table_digests(pool), await _chain(pool)) == before


async def test_the_fold_knows_every_failures_column(pools: tuple[asyncpg.Pool, asyncpg.Pool]) -> None:
    _, pool = pools
    rows = await pool.fetch(
        "SELECT column_name, format_type(a.atttypid, a.atttypmod) AS type"
        " FROM information_schema.columns c"
        " JOIN pg_attribute a ON a.attrelid = 'failures'::regclass AND a.attname = c.column_name"
        " WHERE c.table_schema = current_schema() AND c.table_name = 'failures' ORDER BY c.ordinal_position"
    )
    declared = [
        (r["column_name"], r["type"].replace("timestamp with time zone", "timestamptz")) for r in rows
    ]
    assert declared == list(FAILURE_COLUMNS)


async def test_an_empty_chain_starts_at_genesis(pools: tuple[asyncpg.Pool, asyncpg.Pool]) -> None:
    _, pool = pools
    async with pool.acquire() as conn:
        await apply_or_record(conn, tangled_history(5)[:1])
    first = await pool.fetchrow("SELECT id, prev_hash FROM audit_log ORDER BY id LIMIT 1")
    assert (first["id"], first["prev_hash"]) == (1, GENESIS_HASH)
