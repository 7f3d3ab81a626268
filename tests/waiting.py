"""Waiting on conditions, never on the clock.

A test that sleeps and then asserts either flakes on a loaded machine (the work was not
done yet) or passes wrongly (``nothing more arrived`` only because it had not arrived
*yet*). These helpers poll a condition until a deadline instead, and give the positive
signal that a consumer has finished with everything published so far: its ack floor.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable

from medic.bus import Bus
from medic.events import Event, decode_event

Condition = Callable[[], bool | Awaitable[bool]]

DEADLINE_SECONDS = 30.0
"""Generous: a deadline only bounds a failing test; a passing one returns at once."""


async def wait_for(
    condition: Condition, *, within: float = DEADLINE_SECONDS, what: str = "", every: float = 0.02
) -> None:
    """Return as soon as ``condition()`` is true; fail naming ``what`` after ``within`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        outcome = condition()
        if inspect.isawaitable(outcome):
            outcome = await outcome
        if outcome:
            return
        if loop.time() > deadline:
            raise AssertionError(f"not met within {within:g}s: {what or condition}")
        await asyncio.sleep(every)


async def consumer_caught_up(bus: Bus, durable: str, *, stream: str | None = None) -> bool:
    """Whether ``durable`` has settled (acked or terminated) every message it selects.

    Nothing left to deliver and nothing delivered but unsettled is the server's own word
    that the consumer is done with everything published before this call (a nak'd message
    stays pending), so "nothing more happened" can be asserted after it without a sleep.
    """
    info = await bus.js.consumer_info(stream or bus.topology.stream, durable)
    return bool(info.num_pending == 0 and info.num_ack_pending == 0)


async def wait_until_caught_up(
    bus: Bus, durable: str, *, stream: str | None = None, within: float = DEADLINE_SECONDS
) -> None:
    """Wait until ``durable`` has settled everything published so far (see above)."""
    await wait_for(
        lambda: consumer_caught_up(bus, durable, stream=stream),
        within=within,
        what=f"consumer {durable} settles everything published so far",
    )


async def events_of(bus: Bus, event_type: str) -> list[Event]:
    """Every event of ``event_type`` on the log right now (an ephemeral reader, no durable)."""
    subject = bus.topology.subject(event_type)
    info = await bus.js.stream_info(bus.topology.stream, subjects_filter=subject)
    stored = int((info.state.subjects or {}).get(subject, 0))
    if not stored:
        return []
    sub = await bus.js.pull_subscribe(subject, stream=bus.topology.stream)
    try:
        msgs = await sub.fetch(stored, timeout=10)
        while len(msgs) < stored:
            msgs += await sub.fetch(stored - len(msgs), timeout=10)
    finally:
        await sub.unsubscribe()
    return [decode_event(msg.data) for msg in msgs]


async def wait_for_events(
    bus: Bus, event_type: str, count: int = 1, *, within: float = DEADLINE_SECONDS
) -> list[Event]:
    """Wait until at least ``count`` events of ``event_type`` are on the log; return them all."""
    found: list[Event] = []

    async def enough() -> bool:
        found[:] = await events_of(bus, event_type)
        return len(found) >= count

    await wait_for(enough, within=within, every=0.05, what=f"{count} x {event_type} on the log")
    return found
