"""Concurrent askers of one key share one call; nothing outlives it; one asker leaving harms no other."""

from __future__ import annotations

import asyncio
from functools import partial

import pytest

from medic.singleflight import SingleFlight


class Answerer:
    def __init__(self) -> None:
        self.calls = 0
        self.release = asyncio.Event()

    async def answer(self, value: int) -> int:
        self.calls += 1
        await self.release.wait()
        return value


async def test_askers_of_one_key_share_one_call_and_other_keys_get_their_own() -> None:
    flights: SingleFlight[str, int] = SingleFlight("test")
    answerer = Answerer()
    value = {"a": 1, "b": 2}
    asks = [asyncio.ensure_future(flights.run(key, partial(answerer.answer, value[key]))) for key in "aaab"]
    await asyncio.sleep(0)
    assert flights.in_flight("a") and flights.in_flight("b")
    answerer.release.set()
    assert await asyncio.gather(*asks) == [1, 1, 1, 2]
    assert answerer.calls == 2


async def test_nothing_is_kept_once_the_call_has_landed() -> None:
    flights: SingleFlight[str, int] = SingleFlight("test")
    answerer = Answerer()
    answerer.release.set()
    assert await flights.run("a", lambda: answerer.answer(1)) == 1
    assert not flights.in_flight("a")
    assert await flights.run("a", lambda: answerer.answer(2)) == 2
    assert answerer.calls == 2


async def test_every_asker_gets_the_calls_exception_and_the_next_asks_again() -> None:
    flights: SingleFlight[str, int] = SingleFlight("test")
    release = asyncio.Event()

    async def failing() -> int:
        await release.wait()
        raise LookupError("gone")

    asks = [asyncio.ensure_future(flights.run("a", failing)) for _ in range(3)]
    await asyncio.sleep(0)
    release.set()
    results = await asyncio.gather(*asks, return_exceptions=True)
    assert [type(r) for r in results] == [LookupError] * 3
    assert not flights.in_flight("a")


async def test_an_asker_cancelled_does_not_cancel_the_answer_the_others_await() -> None:
    flights: SingleFlight[str, int] = SingleFlight("test")
    answerer = Answerer()
    first = asyncio.ensure_future(flights.run("a", lambda: answerer.answer(7)))
    second = asyncio.ensure_future(flights.run("a", lambda: answerer.answer(8)))
    await asyncio.sleep(0)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    answerer.release.set()
    assert await second == 7 and answerer.calls == 1
