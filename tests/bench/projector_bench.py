"""Projector throughput: replay N events from the stream into fresh views, against raw COPY.

The baseline is asyncpg COPY of the very rows the replay produced (audit log, failures,
tracking) into tables of the same shape: the fastest the database can take them. The ratio
says what the projection's guarantees cost (decode, tracking dedup, hash chain, upserts).
Both rates are given per event (the COPY's too: the events whose rows it copied), with the
load average, since the machine is shared; the replayed chain is verified afterwards.

    python -m tests.bench.projector_bench 100000     # embedded servers, or NATS_URL/DATABASE_URL
"""

from __future__ import annotations

import asyncio
import itertools
import os
import resource
import sys
import tempfile
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from time import perf_counter
from typing import Any

import asyncpg

from medic.bus import Bus, Topology
from medic.db import connect_pool
from medic.events import Envelope, encode_event
from medic.services.projector.chain import verify_chain
from medic.services.projector.replay import replay
from tests.bench.pipeline_bench import _postgres_cpu
from tests.event_histories import PATHS, failure_history

START = datetime(2025, 1, 1, tzinfo=UTC)
_CHUNK = 20_000
_TABLES = ("audit_log", "failures", "projector_tracking")


def synthetic_events(count: int) -> Iterator[Envelope]:
    """``count`` events of mixed failure histories, generated lazily (1M never sit in memory)."""
    produced = 0
    for i in itertools.count():
        path = PATHS[i % len(PATHS)]
        for event in failure_history(path, repository=f"acme/repo-{i % 50}", run_id=10_000 + i, start=START):
            if produced == count:
                return
            produced += 1
            yield event


async def _publish(bus: Bus, count: int) -> float:
    """Fill the stream fast: core NATS publishes (the stream still stores and dedups them), then
    wait until the stream holds them all. ``Bus.publish`` awaits an ack per event, which would
    make filling the stream the slowest part of the bench."""
    started = perf_counter()
    events = synthetic_events(count)
    while chunk := list(itertools.islice(events, _CHUNK)):
        for event in chunk:
            subject = bus.topology.subject(event.event_type)  # type: ignore[attr-defined]
            headers = {"Nats-Msg-Id": event.event_id, "Medic-Event-Type": event.event_type}  # type: ignore[attr-defined]
            await bus.nc.publish(subject, encode_event(event), headers=headers)
        await bus.nc.flush()
    while (await bus.js.stream_info(bus.topology.stream)).state.messages < count:  # noqa: ASYNC110 - only the server knows
        await asyncio.sleep(0.05)
    return perf_counter() - started


async def _copy_baseline(database_url: str, source: str, target: str) -> tuple[int, float]:
    """COPY every row of the replayed views into empty look-alike tables; time the COPY only."""
    pool = await connect_pool(database_url, target, max_size=2)
    rows, seconds = 0, 0.0
    try:
        async with pool.acquire() as read, pool.acquire() as write:
            for table in _TABLES:
                await write.execute(f'CREATE TABLE {table} (LIKE "{source}".{table} INCLUDING ALL)')
                async with read.transaction():
                    cursor = await read.cursor(f'SELECT * FROM "{source}".{table}')  # noqa: S608 - fixed names
                    while records := await cursor.fetch(_CHUNK):
                        started = perf_counter()
                        await write.copy_records_to_table(table, records=[tuple(r) for r in records])
                        seconds += perf_counter() - started
                        rows += len(records)
    finally:
        await pool.close()
    return rows, seconds


async def _drop(database_url: str, *schemas: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        for schema in schemas:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


_CPU_NAMES = ("bench_process", "worker_process", "postgresql")


def _cpu_split(before: tuple[float | None, ...], after: tuple[float | None, ...]) -> dict[str, float | None]:
    return {
        name: None if a is None or b is None else round(a - b, 2)
        for name, b, a in zip(_CPU_NAMES, before, after, strict=True)
    }


def _cpu(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


async def run(
    nats_url: str, database_url: str, *, events: int, postgres_pid: int | None = None
) -> list[dict[str, Any]]:
    """Publish ``events`` events, replay them into fresh views, COPY the same rows; return figures.

    The replay's CPU is split between this process (reading, writing), its worker process
    (decoding, projecting; a reaped child) and PostgreSQL (when its postmaster is known),
    each including the digests the replay computes after its timed part."""
    token = uuid.uuid4().hex[:10]
    topology = Topology(stream=f"BENCH_{token}", prefix=f"bench{token}")
    replayed, baseline = f"bench_replay_{token}", f"bench_copy_{token}"
    bus = await Bus.connect(nats_url, topology)
    started, load_before = perf_counter(), os.getloadavg()[0]
    try:
        publish_seconds = await _publish(bus, events)
        load_at_replay = os.getloadavg()[0]
        cpu_before = (_cpu(resource.RUSAGE_SELF), _cpu(resource.RUSAGE_CHILDREN), _postgres_cpu(postgres_pid))
        report = await replay(bus, database_url, replayed)
        cpu_after = (_cpu(resource.RUSAGE_SELF), _cpu(resource.RUSAGE_CHILDREN), _postgres_cpu(postgres_pid))
        load_after_replay = os.getloadavg()[0]
        verified = await _verify(database_url, replayed)
        rows, copy_seconds = await _copy_baseline(database_url, replayed, baseline)
    finally:
        for stream in (topology.stream, topology.dlq_stream):
            try:
                await bus.js.delete_stream(stream)
            except Exception as exc:  # the bench must still report; a leftover stream is harmless
                print(f"could not delete stream {stream}: {exc}", file=sys.stderr)
        await bus.close()
        await _drop(database_url, replayed, baseline)
    replay_rows = sum(int(d.split(":")[0]) for d in report.digests.values())
    return [
        _figure("projector_publish", events, publish_seconds, unit="events"),
        _figure(
            "projector_replay",
            report.events_applied,
            report.seconds,
            unit="events",
            rows_written=replay_rows,
            chain_verified=verified,
            cpu_seconds=_cpu_split(cpu_before, cpu_after),
            load_average_1m=[round(load_at_replay, 2), round(load_after_replay, 2)],
        ),
        _figure(
            "projector_copy_baseline",
            rows,
            copy_seconds,
            unit="rows",
            events_per_second=round(events / copy_seconds, 1) if copy_seconds else None,
        ),
        {
            "name": "projector_replay_vs_copy",
            "events": events,
            "replay_events_per_second": round(events / report.seconds, 1) if report.seconds else None,
            "copy_events_per_second": round(events / copy_seconds, 1) if copy_seconds else None,
            "replay_seconds": round(report.seconds, 3),
            "copy_seconds": round(copy_seconds, 3),
            "ratio": round(report.seconds / copy_seconds, 2) if copy_seconds else None,
            "target": ">= 30000 events/s and ratio <= 2",
            "bench_seconds": round(perf_counter() - started, 1),
            "load_average_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)],
            "note": "replay time / raw COPY time of the same rows (lower is better); bench_seconds"
            " is publish + replay + verify + COPY; load average at start and end (2 shared cores)",
        },
    ]


async def _verify(database_url: str, schema: str) -> bool:
    """``medic audit verify`` on the replayed views: the chain the replay wrote must hold."""
    pool = await connect_pool(database_url, schema, max_size=1)
    try:
        return (await verify_chain(pool)).ok
    finally:
        await pool.close()


def _figure(name: str, count: int, seconds: float, *, unit: str, **extra: Any) -> dict[str, Any]:
    per_second = count / seconds if seconds else None
    return {
        "name": name,
        unit: count,
        "seconds": round(seconds, 3),
        f"{unit}_per_second": round(per_second, 1) if per_second else None,
        **extra,
    }


async def _main(count: int) -> None:
    import json

    from medic.embedded import EmbeddedNats, EmbeddedPostgres

    nats_url, database_url = os.environ.get("NATS_URL"), os.environ.get("DATABASE_URL")
    with tempfile.TemporaryDirectory() as tmp:
        nats_server = None if nats_url else EmbeddedNats.start(Path(tmp) / "nats")
        pg_server = None if database_url else EmbeddedPostgres.start(Path(tmp) / "pg", delete_on_stop=True)
        try:
            figures = await run(
                nats_url or nats_server.url,  # type: ignore[union-attr]
                database_url or pg_server.url,  # type: ignore[union-attr]
                events=count,
            )
            print(json.dumps(figures, indent=2))
        finally:
            for server in (nats_server, pg_server):
                if server is not None:
                    server.stop()


if __name__ == "__main__":
    asyncio.run(_main(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000))
