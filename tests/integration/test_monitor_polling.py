"""Polling over real HTTP and a real bus: found once, resumed, shared, free when idle, patient."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from medic.bus import Bus, Topology
from medic.records import hashed_key as repository_key
from medic.services.monitor.service import MonitorService
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


async def polls_past_the_duplicate_window(monitor: MonitorService) -> None:
    """Wait for three more polls, the last after JetStream's duplicate window, then for the
    monitor to have inspected all they recorded: only then can "reported once" be asserted."""
    assert monitor.poller is not None
    poller, bus = monitor.poller, monitor.bus
    polled = poller.stats["polled"]
    window_ends = asyncio.get_running_loop().time() + bus.topology.duplicate_window_seconds
    await wait_until(
        lambda: poller.stats["polled"] >= polled + 3 and asyncio.get_running_loop().time() > window_ends
    )
    await intake_settled(bus)


@pytest.fixture
def topology() -> Topology:
    """JetStream forgets duplicates after one second here: once-only must not lean on its window."""
    token = uuid.uuid4().hex[:10]
    return Topology(stream=f"T_{token}", prefix=f"t{token}", duplicate_window_seconds=1.0)


async def test_polling_finds_failures_and_emits_each_once(bus: Bus) -> None:
    async with monitor_world(bus) as world:
        first = world.sandbox.add_failed_run(REPO, "flaky_test")
        second = world.sandbox.add_failed_run(REPO, "dependency_conflict")
        world.sandbox.add_passed_run(REPO)
        monitor = await world.monitor(poll_repositories=(REPO,))
        await wait_for_detected(bus, 2)
        await polls_past_the_duplicate_window(monitor)
        events = await all_detected(bus)
        assert attempts(events) == [(REPO, first.id, 1), (REPO, second.id, 1)]
        assert {e.payload.source for e in events} == {"poll"}
        assert all(e.payload.failed_jobs and e.payload.failed_jobs[0].log_tail for e in events)
        assert monitor.poller is not None and monitor.poller.stats["polled"] >= 3


async def test_a_restarted_monitor_resumes_from_the_cursor(bus: Bus) -> None:
    async with monitor_world(bus) as world:
        before = world.sandbox.add_failed_run(REPO, "flaky_test")
        first = await world.monitor(poll_repositories=(REPO,))
        await wait_for_detected(bus, 1)
        await first.stop()
        world.monitors.remove(first)
        after = world.sandbox.add_failed_run(REPO, "out_of_memory")
        second = await world.monitor(poll_repositories=(REPO,))
        events = await wait_for_detected(bus, 2)
        await polls_past_the_duplicate_window(second)
        assert attempts(await all_detected(bus)) == [(REPO, before.id, 1), (REPO, after.id, 1)]
        assert len(events) == 2
        assert second.poller is not None and second.poller.stats["recorded"] == 1  # only the new one


async def test_webhook_and_poll_of_one_attempt_give_one_failure(bus: Bus) -> None:
    async with monitor_world(bus) as world:
        run = world.sandbox.add_failed_run(REPO, "flaky_test")
        hooked = await world.monitor(catch_up_polling=False)  # only the second monitor polls
        url = await world.serve(hooked)
        response = await post_webhook(url, "workflow_run", run_completed_payload(world, run))
        assert response.status_code == 202
        await wait_for_detected(bus, 1)
        window_ends = asyncio.get_running_loop().time() + bus.topology.duplicate_window_seconds
        # beyond the duplicate window: the monitor itself must remember
        await wait_until(lambda: asyncio.get_running_loop().time() > window_ends)
        poller = await world.monitor(poll_repositories=(REPO,))
        await polls_past_the_duplicate_window(poller)
        assert poller.poller is not None and poller.poller.stats["recorded"] == 1
        events = await all_detected(bus)
        assert attempts(events) == [(REPO, run.id, 1)]
        assert events[0].payload.source == "webhook"


async def test_two_replicas_share_an_organisation_and_report_each_failure_once(bus: Bus) -> None:
    repos = [f"acme/service-{i}" for i in range(8)]
    async with monitor_world(bus) as world:
        runs = [world.sandbox.add_failed_run(repo, "flaky_test") for repo in repos]
        one = await world.monitor(poll_organisations=("acme",))
        two = await world.monitor(poll_organisations=("acme",))
        await wait_for_detected(bus, len(repos))
        await wait_until(
            lambda: all(m.poller is not None and m.poller.stats["polled"] > 0 for m in (one, two))
        )
        await polls_past_the_duplicate_window(one)
        await polls_past_the_duplicate_window(two)
        events = await all_detected(bus)
        assert attempts(events) == sorted((r.repository.full_name, r.id, 1) for r in runs)
        assert one.poller is not None and two.poller is not None
        assert one.poller.stats["polled"] > 0 and two.poller.stats["polled"] > 0
        assert one.poller.stats["recorded"] + two.poller.stats["recorded"] >= len(repos)


async def test_idle_repositories_cost_no_rate_limit(bus: Bus) -> None:
    repos = [f"acme/idle-{i}" for i in range(3)]
    async with monitor_world(bus) as world:
        for repo in repos:
            world.sandbox.add_passed_run(repo)
        monitor = await world.monitor(poll_repositories=tuple(repos))
        assert monitor.poller is not None
        await wait_until(lambda: monitor.poller is not None and monitor.poller.stats["polled"] >= len(repos))
        charged = world.charged()
        polled = monitor.poller.stats["polled"]
        await wait_until(lambda: monitor.poller is not None and monitor.poller.stats["polled"] >= polled + 6)
        assert world.charged() == charged


async def test_an_exhausted_rate_limit_pauses_polling_until_reset_and_loses_nothing(bus: Bus) -> None:
    async with monitor_world(bus) as world:
        run = world.sandbox.add_failed_run(REPO, "flaky_test")
        world.sandbox.set_modes({"rate_limit_exhausted_for_seconds": 2.5})
        monitor = await world.monitor(poll_repositories=(REPO,))
        assert monitor.poller is not None
        await wait_until(lambda: monitor.poller is not None and monitor.poller.stats["rate_limited"] >= 1)
        assert monitor.poller.stats["rate_limited"] == 1  # asked once, then waited
        assert monitor.poller.paused_until > 0
        assert await all_detected(bus) == []
        events = await wait_for_detected(bus, 1, within=6)
        assert attempts(events) == [(REPO, run.id, 1)]
        assert events[0].payload.failed_jobs[0].log_tail


async def test_garbage_cursors_and_bad_names_are_ignored_with_a_log(bus: Bus) -> None:
    async with monitor_world(bus) as world:
        run = world.sandbox.add_failed_run(REPO, "flaky_test")
        kv = await bus.js.create_key_value(bucket=f"{bus.topology.stream}_monitor_cursors", history=1)
        await kv.put(repository_key("cursor", REPO), b"\x00not json{{")
        await kv.put(repository_key("lease", REPO), b"[]")
        monitor = await world.monitor(
            poll_repositories=(REPO, "../../etc/passwd", "acme/", "a b/c"),
            poll_organisations=("bad org!", "-leading", "nobody-here"),
        )
        events = await wait_for_detected(bus, 1)
        assert attempts(events) == [(REPO, run.id, 1)]
        assert monitor.poller is not None
        assert monitor.poller.repositories == (REPO,)
        assert monitor.poller.organisations == ("nobody-here",)


async def test_a_burst_larger_than_a_page_is_found_whole(bus: Bus) -> None:
    """More failed runs than one page between two polls (or while the monitor was down): the
    poll reads on into older pages instead of advancing its cursor past the oldest ones."""
    from medic.services.monitor.polling import PAGE_SIZE

    async with monitor_world(bus) as world:
        runs = [world.sandbox.add_failed_run(REPO, "flaky_test") for _ in range(PAGE_SIZE + 30)]
        monitor = await world.monitor(poll_repositories=(REPO,))
        poller = monitor.poller
        assert poller is not None
        await wait_until(lambda: poller.stats["recorded"] >= len(runs), within=30)
        assert poller.stats["polled"] == 1  # one poll found them all
        assert poller.stats["older_pages"] == 1
        await wait_for_detected(bus, len(runs), within=60)
        assert attempts(await all_detected(bus)) == sorted((REPO, run.id, 1) for run in runs)
