"""Webhook intake beyond workflow_run: the allowlist and failed workflow_job deliveries."""

from __future__ import annotations

from prometheus_client import REGISTRY

from medic.bus import Bus
from tests.integration.monitor_support import (
    all_detected,
    attempts,
    intake_settled,
    job_completed_payload,
    monitor_world,
    post_webhook,
    run_completed_payload,
    wait_for_detected,
)


def not_allowed_count() -> float:
    labels = {"event": "workflow_run", "outcome": "not_allowed"}
    return REGISTRY.get_sample_value("medic_webhooks_total", labels) or 0.0


async def test_repositories_outside_the_allowlist_are_acknowledged_and_ignored(bus: Bus) -> None:
    async with monitor_world(bus) as world:
        outsider = world.sandbox.add_failed_run("evil/repo", "flaky_test")
        member = world.sandbox.add_failed_run("Acme/Anything", "flaky_test")
        named = world.sandbox.add_failed_run("other/one", "flaky_test")
        sibling = world.sandbox.add_failed_run("other/two", "flaky_test")
        monitor = await world.monitor(allowed_repositories="acme/*, other/one")
        url = await world.serve(monitor)
        before = not_allowed_count()
        for run in (outsider, sibling):
            response = await post_webhook(url, "workflow_run", run_completed_payload(world, run))
            assert response.status_code == 200
            assert response.json()["status"] == "ignored"
        assert not_allowed_count() == before + 2
        for run in (member, named):
            response = await post_webhook(url, "workflow_run", run_completed_payload(world, run))
            assert response.status_code == 202
        events = await wait_for_detected(bus, 2)
        await intake_settled(bus)
        assert attempts(await all_detected(bus)) == attempts(events)
        assert {e.payload.repository for e in events} == {"Acme/Anything", "other/one"}


async def test_a_failed_job_reports_its_run_even_without_a_workflow_run_webhook(bus: Bus) -> None:
    async with monitor_world(bus) as world:
        run = world.sandbox.add_failed_run("acme/api", "unit_test_assertion", pull_request_numbers=[7])
        monitor = await world.monitor()
        url = await world.serve(monitor)
        response = await post_webhook(url, "workflow_job", job_completed_payload(world, run))
        assert response.status_code == 202 and response.json()["status"] == "recorded"
        [event] = await wait_for_detected(bus, 1)
        payload = event.payload
        assert (payload.run_id, payload.run_attempt, payload.workflow_name) == (run.id, 1, "CI")
        assert payload.commit_message == run.commit_message  # fetched from the run, not in the job payload
        assert payload.pull_requests == (7,)
        assert payload.failed_jobs[0].log_tail
        # the run's own webhook for the same attempt arrives later: still one failure
        late = await post_webhook(url, "workflow_run", run_completed_payload(world, run), delivery="d-2")
        assert late.status_code == 202
        await intake_settled(bus)  # the late delivery was inspected, and found already reported
        assert len(await all_detected(bus)) == 1


async def test_a_failed_job_of_a_run_github_cannot_find_is_still_reported(bus: Bus) -> None:
    async with monitor_world(bus) as world:
        run = world.sandbox.add_failed_run("acme/api", "unit_test_assertion")
        payload = job_completed_payload(world, run)
        payload["workflow_job"]["run_id"] = 1  # GitHub has no such run (deleted, or not visible)
        monitor = await world.monitor(catch_up_polling=False)  # a catch-up poll would find the real run
        url = await world.serve(monitor)
        assert (await post_webhook(url, "workflow_job", payload)).status_code == 202
        [event] = await wait_for_detected(bus, 1)
        assert event.payload.run_id == 1
        assert event.payload.workflow_name == "CI"  # from the job's own payload
