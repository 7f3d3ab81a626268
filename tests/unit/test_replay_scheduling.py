"""How a replay shares the event loop with its writer and how it runs the cyclic collector."""

from __future__ import annotations

import asyncio
import gc
import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from medic.events import encode_event
from medic.services.projector import replay as replay_module
from medic.services.projector.replay import ReplayError, ReplayReport, _collect_on_growth, _prepare_chunk
from medic.services.projector.store import Prepared
from medic.services.projector.stream_reader import StreamMessage
from tests.event_histories import mixed_histories

START = datetime(2025, 1, 1, tzinfo=UTC)
START_NS = int(START.timestamp()) * 1_000_000_000


def _chunk(count: int) -> list[StreamMessage]:
    events = mixed_histories(count, start=START)[:count]
    return [StreamMessage(seq, START_NS, encode_event(e)) for seq, e in enumerate(events, 1)]


async def _turns_of_others_during_120_messages(monkeypatch: pytest.MonkeyPatch, yield_after: float) -> int:
    """How often another task ran while 120 messages were prepared in pieces of 10 (all of
    them projected), with the reader's time budget at ``yield_after``."""
    monkeypatch.setattr(replay_module, "PIECE", 10)
    monkeypatch.setattr(replay_module, "YIELD_AFTER_SECONDS", yield_after)
    chunk = _chunk(120)
    turns = 0
    stop = asyncio.Event()

    async def other() -> None:
        nonlocal turns
        while not stop.is_set():
            await asyncio.sleep(0)
            turns += 1

    task = asyncio.create_task(other())
    await asyncio.sleep(0)  # let it start, so only turns during the preparation count
    before = turns
    prepared = await _prepare_chunk(chunk, None)
    during = turns - before
    stop.set()
    await task
    assert len(prepared.entries or []) == 120
    return during


async def test_the_reader_lets_the_writer_run_once_its_time_is_up(monkeypatch: pytest.MonkeyPatch) -> None:
    assert await _turns_of_others_during_120_messages(monkeypatch, 0.0) >= 12  # after every piece of 10


async def test_the_reader_keeps_the_loop_while_its_time_lasts(monkeypatch: pytest.MonkeyPatch) -> None:
    # a count of messages no longer decides when to yield
    assert await _turns_of_others_during_120_messages(monkeypatch, 60.0) == 0


class _Cycle:
    def __init__(self) -> None:
        self.me = self


def _collections() -> int:
    return sum(g["collections"] for g in gc.get_stats())


def test_live_objects_under_the_growth_bound_are_never_scanned(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(replay_module, "HEAP_GROWTH_OBJECTS", 200_000)
    before = gc.get_threshold()
    with _collect_on_growth():
        assert gc.get_threshold()[0] == 200_000
        start = _collections()
        for _ in range(20):  # 20 batches of 50,000 objects, each freed by reference counting
            batch = [[i] for i in range(50_000)]
            del batch
        assert _collections() == start
    assert gc.get_threshold() == before


def test_a_leak_of_cycles_is_collected_once_the_heap_grows_past_the_bound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(replay_module, "HEAP_GROWTH_OBJECTS", 50_000)
    with _collect_on_growth():
        start = _collections()
        for _ in range(200_000):
            _Cycle()  # garbage reference counting cannot free
        assert _collections() > start
        assert gc.get_count()[0] < 50_000


def _dies(chunk: object, until: object) -> None:
    """Run in the worker process: it stops as if killed."""
    os._exit(3)


async def test_a_worker_process_that_dies_fails_the_replay_with_its_reason(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(replay_module, "prepare_packed", _dies)
    queue: asyncio.Queue[Prepared | None] = asyncio.Queue()

    async def chunks() -> AsyncIterator[list[StreamMessage]]:
        yield _chunk(3)

    report = ReplayReport(target_schema="t")
    with pytest.raises(ReplayError, match="worker process stopped"):
        await replay_module._prepare_beside(chunks(), queue, report)
    assert queue.empty()  # nothing prepared was handed to the writer
