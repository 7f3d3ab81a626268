"""A kept page serves failures received before it was requested, within its age and size bounds;
a failed request is never kept; one asker leaving does not cancel the page the others await."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from medic.services.monitor.branch_pages import FreshPages, Runs
from medic.services.monitor.detection import all_or_none

T0 = datetime(2026, 1, 1, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def tick(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


class GitHub:
    """Counts requests; each answers with an empty page, or fails while ``broken``."""

    def __init__(self) -> None:
        self.requests = 0
        self.broken = False
        self.release = asyncio.Event()
        self.release.set()

    async def page(self) -> Runs:
        self.requests += 1
        await self.release.wait()
        if self.broken:
            raise RuntimeError("GitHub said no")
        return ()


async def test_received_before_the_request_reuses_the_page_received_after_fetches_anew() -> None:
    clock, github = Clock(), GitHub()
    pages = FreshPages("test", clock=clock)
    received = clock.tick(1)
    clock.tick(1)
    await pages.get(("r", "main"), received, github.page)
    await pages.get(("r", "main"), received, github.page)
    await pages.get(("r", "main"), clock.now, github.page)  # received the moment it was requested
    assert github.requests == 1
    await pages.get(("r", "other"), received, github.page)  # another branch, another page
    assert github.requests == 2
    later = clock.tick(0.001)
    await pages.get(("r", "main"), later, github.page)
    assert github.requests == 3


async def test_a_page_past_its_age_is_not_reused() -> None:
    clock, github = Clock(), GitHub()
    pages = FreshPages("test", clock=clock, max_age=timedelta(seconds=60))
    received = clock.now
    await pages.get(("r", "main"), received, github.page)
    clock.tick(61)
    await pages.get(("r", "main"), received, github.page)
    assert github.requests == 2


async def test_pages_kept_are_bounded_and_the_oldest_goes_first() -> None:
    clock, github = Clock(), GitHub()
    pages = FreshPages("test", clock=clock, max_keys=2)
    received = clock.now
    for branch in ("a", "b", "c"):
        await pages.get(("r", branch), received, github.page)
    assert len(pages) == 2 and github.requests == 3
    await pages.get(("r", "c"), received, github.page)
    await pages.get(("r", "a"), received, github.page)  # dropped: asked again
    assert github.requests == 4


async def test_a_failed_request_is_never_kept() -> None:
    clock, github = Clock(), GitHub()
    pages = FreshPages("test", clock=clock)
    github.broken = True
    with pytest.raises(RuntimeError):
        await pages.get(("r", "main"), clock.now, github.page)
    assert len(pages) == 0
    github.broken = False
    assert await pages.get(("r", "main"), clock.now - timedelta(seconds=1), github.page) == ()
    assert github.requests == 2


async def test_one_asker_cancelled_leaves_the_page_to_the_others() -> None:
    clock, github = Clock(), GitHub()
    github.release.clear()
    pages = FreshPages("test", clock=clock)
    asks = [asyncio.ensure_future(pages.get(("r", "main"), clock.now, github.page)) for _ in range(3)]
    await asyncio.sleep(0)
    asks[0].cancel()
    github.release.set()
    assert await asyncio.gather(*asks[1:]) == [(), ()]
    assert asks[0].cancelled() and github.requests == 1


async def test_a_stamp_from_the_future_is_never_served_an_older_page() -> None:
    clock, github = Clock(), GitHub()
    pages = FreshPages("test", clock=clock)
    await pages.get(("r", "main"), clock.now, github.page)
    await pages.get(("r", "main"), clock.now + timedelta(seconds=5), github.page)  # a replica's clock ahead
    assert github.requests == 2


async def test_reading_logs_at_once_the_first_to_raise_cancels_the_rest_and_is_raised() -> None:
    never = asyncio.Event()
    cancelled: list[int] = []

    async def waits(n: int) -> int:
        try:
            await never.wait()
        except asyncio.CancelledError:
            cancelled.append(n)
            raise
        return n

    async def rate_limited() -> int:
        await asyncio.sleep(0)
        raise RuntimeError("rate limited")

    with pytest.raises(RuntimeError, match="rate limited"):
        await all_or_none([waits(1), rate_limited(), waits(3)])
    assert sorted(cancelled) == [1, 3]

    async def value(n: int) -> int:
        await asyncio.sleep(0.01 * (3 - n))  # the last finishes first: results keep their order
        return n

    assert await all_or_none([value(1), value(2), value(3)]) == [1, 2, 3]
