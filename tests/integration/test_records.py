"""The kernel's record store on a real JetStream key-value bucket."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from pydantic import BaseModel, ConfigDict

from medic.bus import Bus
from medic.records import RecordConflict, RecordStore, hashed_key


class Counter(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    value: int = 0


async def store(bus: Bus) -> RecordStore[Counter]:
    return await RecordStore.open(bus.js, f"{bus.topology.stream}_records_{uuid.uuid4().hex[:6]}", Counter)


async def test_create_only_if_absent_and_replace_only_at_the_revision_read(bus: Bus) -> None:
    records = await store(bus)
    assert await records.create("c", Counter(name="a"))
    assert not await records.create("c", Counter(name="b"))
    found = await records.get("c")
    assert found is not None and found.record.name == "a"

    revision = await records.replace("c", Counter(name="a", value=1), found.revision)
    with pytest.raises(RecordConflict):
        await records.replace("c", Counter(name="a", value=2), found.revision)  # stale revision
    assert revision > found.revision
    again = await records.get("c")
    assert again is not None and again.record.value == 1


async def test_a_value_that_is_not_ours_reads_as_absent_and_is_overwritten_by_change(bus: Bus) -> None:
    records = await store(bus)
    await records.kv.put("c", b"\x00not json{{")
    assert await records.get("c") is None

    before, after = await records.change(
        "c", lambda c: Counter(name="fresh", value=(c.value if c else 0) + 1)
    )

    assert before is None and after == Counter(name="fresh", value=1)
    found = await records.get("c")
    assert found is not None and found.record == after


async def test_concurrent_changes_are_all_applied_none_lost(bus: Bus) -> None:
    """Two writers incrementing one counter 25 times each end at 50: compare-and-set retries."""
    one, two = await store(bus), None
    two = RecordStore(one.kv, Counter, bucket=one.bucket)

    async def increment(records: RecordStore[Counter], times: int) -> None:
        for _ in range(times):
            await records.change("n", lambda c: Counter(name="n", value=(c.value if c else 0) + 1))

    await asyncio.gather(increment(one, 25), increment(two, 25))

    found = await one.get("n")
    assert found is not None and found.record.value == 50


async def test_a_step_that_returns_none_writes_nothing(bus: Bus) -> None:
    records = await store(bus)
    assert await records.change("c", lambda c: None) == (None, None)
    assert await records.get("c") is None
    assert await records.keys() == []


async def test_items_by_prefix_and_hashed_keys(bus: Bus) -> None:
    records = await store(bus)
    for name in ("octo/app", "octo/.dotted", "Octo/Ünïcode repo"):
        await records.put(hashed_key("repo", name), Counter(name=name))
    await records.put("other.1", Counter(name="other"))

    names = sorted([v.record.name async for _, v in records.items("repo.")])

    assert names == sorted(["octo/app", "octo/.dotted", "Octo/Ünïcode repo"])
    assert hashed_key("repo", "OCTO/APP") == hashed_key("repo", "octo/app")


async def test_a_change_reads_the_record_once(bus: Bus) -> None:
    """The revision compared-and-set is the one the record was read at: one read, not two (the
    gate changes a budget for every decision, so each read is a round trip per failure)."""
    records = await store(bus)
    await records.put("c", Counter(name="c", value=1))
    reads: list[str] = []
    get = records.kv.get

    async def counted_get(key: str, revision: int | None = None) -> object:
        reads.append(key)
        return await get(key, revision)

    records.kv.get = counted_get  # type: ignore[assignment,method-assign]

    _, after = await records.change("c", lambda c: Counter(name="c", value=(c.value if c else 0) + 1))

    assert after == Counter(name="c", value=2)
    assert reads == ["c"]
