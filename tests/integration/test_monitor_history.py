"""History for the analyzer: earlier attempts, the same commit's other runs, the parent commit."""

from __future__ import annotations

from medic.bus import Bus
from medic.events import RunHistory
from medic.sandbox import github_payloads as payloads
from medic.sandbox.github_store import fake_sha
from tests.integration.monitor_support import (
    monitor_world,
    post_webhook,
    run_completed_payload,
    wait_for_detected,
)

REPO = "acme/api"


async def test_a_rerun_that_passed_on_the_same_commit_and_a_green_parent_are_reported(bus: Bus) -> None:
    async with monitor_world(bus, rerun_delay_seconds=0.05) as world:
        sandbox = world.sandbox
        links = payloads.Links(api=world.github_url)
        sandbox.add_passed_run(REPO, head_sha=fake_sha("parent"))
        commit = fake_sha("the commit")
        flaky = sandbox.add_failed_run(REPO, "flaky_test", head_sha=commit)
        sandbox.start_rerun(flaky, failed_only=True, links=links)  # heals: the same commit passes
        broken = sandbox.add_failed_run(REPO, "unit_test_assertion", head_sha=commit)
        sandbox.start_rerun(broken, failed_only=True, links=links)  # fails again, attempt 2
        await sandbox.drain()
        assert flaky.latest.conclusion == "success" and broken.latest.conclusion == "failure"
        monitor = await world.monitor()
        url = await world.serve(monitor)
        response = await post_webhook(url, "workflow_run", run_completed_payload(world, broken))
        assert response.status_code == 202
        [event] = await wait_for_detected(bus, 1)
        assert event.payload.run_attempt == 2
        assert event.payload.history == RunHistory(
            earlier_attempts_passed=1, earlier_attempts_failed=1, parent_commit_conclusion="success"
        )


async def test_a_first_attempt_without_an_older_run_has_empty_history(bus: Bus) -> None:
    async with monitor_world(bus) as world:
        run = world.sandbox.add_failed_run(REPO, "compile_error")
        monitor = await world.monitor()
        url = await world.serve(monitor)
        await post_webhook(url, "workflow_run", run_completed_payload(world, run))
        [event] = await wait_for_detected(bus, 1)
        assert event.payload.history == RunHistory()


async def test_history_that_github_cannot_give_never_stops_the_detection(bus: Bus) -> None:
    async with monitor_world(bus) as world:
        run = world.sandbox.add_failed_run(REPO, "compile_error")
        payload = run_completed_payload(world, run)
        payload["repository"]["full_name"] = "acme/gone"  # the sandbox answers 404 for everything
        monitor = await world.monitor()
        url = await world.serve(monitor)
        assert (await post_webhook(url, "workflow_run", payload)).status_code == 202
        [event] = await wait_for_detected(bus, 1)
        assert event.payload.history is None
        assert event.payload.failed_jobs[0].log_unavailable_reason
