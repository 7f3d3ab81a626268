"""The monitor asks whether an attempt was reported beside GitHub, not before it: a new failure
waits for the slower of the two, and an attempt found reported is still reported once."""

from __future__ import annotations

import asyncio

from medic.bus import Bus
from medic.services.monitor.store import Detections
from tests.integration.monitor_support import (
    all_detected,
    intake_settled,
    monitor_world,
    post_webhook,
    run_completed_payload,
    wait_for_detected,
    wait_until,
)


class HeldDetections(Detections):
    """The real bucket, whose "already reported?" answer is held until the test lets it go."""

    def __init__(self, inner: Detections) -> None:
        super().__init__(inner.store)
        self.asked = asyncio.Event()
        self.answer = asyncio.Event()

    async def reported(self, failure_id: str) -> bool:
        self.asked.set()
        await self.answer.wait()
        return await super().reported(failure_id)


async def test_github_is_read_while_the_dedup_read_is_still_out(bus: Bus) -> None:
    async with monitor_world(bus) as world:
        run = world.sandbox.add_failed_run("acme/web", "unit_test_assertion")
        monitor = await world.monitor()
        assert monitor._detections is not None
        held = HeldDetections(monitor._detections)
        monitor._detections = held
        url = await world.serve(monitor)
        assert (await post_webhook(url, "workflow_run", run_completed_payload(world, run))).status_code == 202
        try:
            await asyncio.wait_for(held.asked.wait(), timeout=10)
            # the jobs list and the log went out although the dedup read has not answered
            await wait_until(lambda: world.charged() >= 2)
            assert await all_detected(bus) == []  # nothing is published before the answer
        finally:
            held.answer.set()
        [event] = await wait_for_detected(bus, 1)
        assert event.payload.run_id == run.id
        assert event.payload.failed_jobs[0].log_tail


async def test_an_attempt_found_reported_is_not_reported_again(bus: Bus) -> None:
    async with monitor_world(bus) as world:
        run = world.sandbox.add_failed_run("acme/web", "unit_test_assertion")
        monitor = await world.monitor()
        url = await world.serve(monitor)
        assert (await post_webhook(url, "workflow_run", run_completed_payload(world, run))).status_code == 202
        [first] = await wait_for_detected(bus, 1)
        await intake_settled(bus)
        # the same attempt again, past JetStream's duplicate window: only the bucket knows it
        await monitor.stop()
        await bus.js.delete_stream(f"{bus.topology.stream}_INTAKE")  # and its duplicate window
        url = await world.serve(await world.monitor())
        again = await post_webhook(url, "workflow_run", run_completed_payload(world, run), delivery="d-2")
        assert again.json()["status"] == "recorded"  # not a duplicate for JetStream
        await intake_settled(bus)
        assert [e.event_id for e in await all_detected(bus)] == [first.event_id]
