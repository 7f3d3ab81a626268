"""The pull loop against a real nats-server: a message is handed over the moment it arrives,
never held for a batch to fill, and the server is asked only for the slots that are free."""

from __future__ import annotations

import asyncio
import time

from nats.js import api as js_api

from medic.bus import Bus, Delivery
from medic.puller import Puller


async def _work_consumer(bus: Bus, durable: str) -> tuple[str, str]:
    stream, subject = f"{bus.topology.stream}_W", f"{bus.topology.prefix}.work"
    await bus.ensure_work_stream(stream, [subject])
    await bus.js.add_consumer(
        stream, js_api.ConsumerConfig(durable_name=durable, ack_policy=js_api.AckPolicy.EXPLICIT)
    )
    return stream, subject


async def test_a_message_is_handed_over_while_the_request_for_more_stays_open(bus: Bus) -> None:
    stream, subject = await _work_consumer(bus, "p1")
    puller = Puller(bus.nc, stream, "p1", request_seconds=30)
    await puller.open()
    try:
        waiting = asyncio.ensure_future(puller.next(lambda: 8))
        await asyncio.sleep(0.1)  # the request for 8 is open on the server
        published = time.monotonic()
        await bus.js.publish(subject, b"one", stream=stream)
        msg = await asyncio.wait_for(waiting, timeout=5)  # waiting for the batch to fill: 30 s
        assert msg is not None and msg.data == b"one"
        assert time.monotonic() - published < 2
        assert puller.requested == 7  # the same request, still open for the other seven
        await msg.ack()
    finally:
        await puller.close()


async def test_only_free_slots_are_asked_for_and_a_freed_slot_asks_again(bus: Bus) -> None:
    stream, subject = await _work_consumer(bus, "p2")
    puller = Puller(bus.nc, stream, "p2", request_seconds=30)
    await puller.open()
    free = 0
    try:
        waiting = asyncio.ensure_future(puller.next(lambda: free))
        await bus.js.publish(subject, b"one", stream=stream)
        await asyncio.sleep(0.3)
        assert not waiting.done()  # no free slot: nothing was asked for, nothing delivered
        assert puller.requested == 0
        free = 1
        puller.wake()
        assert await asyncio.wait_for(waiting, timeout=5) is None  # woken to look at the slots
        msg = await asyncio.wait_for(puller.next(lambda: free), timeout=5)
        assert msg is not None and msg.data == b"one"
        assert puller.requested == 0  # the request for one slot is used up
        await msg.ack()
    finally:
        await puller.close()


async def test_an_expired_request_is_renewed(bus: Bus) -> None:
    stream, subject = await _work_consumer(bus, "p3")
    puller = Puller(bus.nc, stream, "p3", request_seconds=0.2)
    await puller.open()
    try:
        waiting = asyncio.ensure_future(puller.next(lambda: 4))
        await asyncio.sleep(1.0)  # several requests expired (408) and were renewed meanwhile
        await bus.js.publish(subject, b"late", stream=stream)
        msg = await asyncio.wait_for(waiting, timeout=5)
        assert msg is not None and msg.data == b"late"
        await msg.ack()
    finally:
        await puller.close()


async def test_a_handler_starts_while_another_still_runs(bus: Bus) -> None:
    """Through the subscription: a second message is handled at once, not after the first
    handler or a fetch window ends."""
    stream, subject = f"{bus.topology.stream}_W", f"{bus.topology.prefix}.work"
    await bus.ensure_work_stream(stream, [subject])
    started: dict[bytes, float] = {}
    release = asyncio.Event()

    async def handle(item: bytes, delivery: Delivery) -> None:
        started[item] = time.monotonic()
        if item == b"slow":
            await release.wait()

    sub = bus.subscribe_work("w", handle, stream=stream, subjects=[subject], decode=bytes, concurrency=8)
    await sub.start()
    try:
        await bus.js.publish(subject, b"slow", stream=stream)
        while b"slow" not in started:  # noqa: ASYNC110 - waiting for the handler to begin
            await asyncio.sleep(0.01)
        published = time.monotonic()
        await bus.js.publish(subject, b"quick", stream=stream)
        while b"quick" not in started:
            assert time.monotonic() - published < 2, "the second message waited"
            await asyncio.sleep(0.01)
    finally:
        release.set()
        stopping = time.monotonic()
        await sub.stop()
        assert time.monotonic() - stopping < 2  # the open request does not hold the stop
    assert await bus.pending("w", stream=stream) == 0
