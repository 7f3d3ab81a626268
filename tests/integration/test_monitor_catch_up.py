"""Catch-up polling (issue 9, defect 7): webhooks lost while the monitor was down are recovered.

Every repository that has sent a verified webhook is polled on start and every interval,
with conditional requests; nothing needs configuring.
"""

from __future__ import annotations

from medic.bus import Bus
from tests.integration.monitor_support import (
    all_detected,
    attempts,
    intake_settled,
    monitor_world,
    post_webhook,
    run_completed_payload,
    wait_for_detected,
    wait_until,
)

REPO = "acme/api"
SLOW = 10.0
"""Minutes: no interval passes during a test, so only the poll on start can find anything."""


async def test_a_failure_whose_webhook_was_lost_during_a_crash_is_found_on_restart(bus: Bus) -> None:
    async with monitor_world(bus) as world:
        seen = world.sandbox.add_failed_run(REPO, "flaky_test")
        first = await world.monitor(polling_interval_minutes=SLOW)
        url = await world.serve(first)
        response = await post_webhook(url, "workflow_run", run_completed_payload(world, seen))
        assert response.status_code == 202
        await wait_for_detected(bus, 1)
        await first.stop()  # the crash: the next run's webhook is never delivered
        world.monitors.remove(first)
        missed = world.sandbox.add_failed_run(REPO, "out_of_memory")
        world.sandbox.add_failed_run("acme/never-sent", "flaky_test")  # no webhook ever: not polled

        second = await world.monitor(polling_interval_minutes=SLOW)
        events = await wait_for_detected(bus, 2)
        await intake_settled(bus)
        assert attempts(await all_detected(bus)) == [(REPO, seen.id, 1), (REPO, missed.id, 1)]
        recovered = next(e for e in events if e.payload.run_id == missed.id)
        assert recovered.payload.source == "poll"
        assert second.poller is not None and second.poller.stats["recorded"] >= 1


async def test_the_catch_up_poll_repeats_and_an_idle_repository_costs_no_rate_limit(bus: Bus) -> None:
    async with monitor_world(bus) as world:
        run = world.sandbox.add_failed_run(REPO, "flaky_test")
        monitor = await world.monitor()  # polls every 0.4 s
        url = await world.serve(monitor)
        await post_webhook(url, "workflow_run", run_completed_payload(world, run))
        poller = monitor.poller
        assert poller is not None
        await wait_until(lambda: poller.stats["polled"] >= 2)
        charged = world.charged()
        polled = poller.stats["polled"]
        await wait_until(lambda: poller.stats["polled"] >= polled + 3)
        assert world.charged() == charged  # 304s only: the repository was idle
        later = world.sandbox.add_failed_run(REPO, "dependency_conflict")  # webhook lost
        events = await wait_for_detected(bus, 2)
        assert (REPO, later.id, 1) in attempts(events)


async def test_catch_up_polling_can_be_switched_off(bus: Bus) -> None:
    async with monitor_world(bus) as world:
        run = world.sandbox.add_failed_run(REPO, "flaky_test")
        monitor = await world.monitor(catch_up_polling=False)
        url = await world.serve(monitor)
        await post_webhook(url, "workflow_run", run_completed_payload(world, run))
        await wait_for_detected(bus, 1)
        world.sandbox.add_failed_run(REPO, "out_of_memory")
        assert monitor.poller is None  # nothing can find the second run: no poller was started
        await intake_settled(bus)
        assert len(await all_detected(bus)) == 1
