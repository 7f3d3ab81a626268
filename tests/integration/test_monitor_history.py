"""History for the analyzer: earlier attempts, the same commit's other runs, the parent commit,
the branch's last green run; a page of the branch's runs serves every failure received before it
was requested, and a failure received after it gets a fresh one."""

from __future__ import annotations

import asyncio
import json

import pytest

from medic.bus import Bus, DecodeError
from medic.events import RunHistory, utc_now
from medic.github.client import GitHubClient
from medic.sandbox import github_payloads as payloads
from medic.sandbox.github import SandboxGitHub, create_sandbox_github
from medic.sandbox.github_store import fake_sha
from medic.sandbox.serving import serve_on_free_port
from medic.services.monitor.detection import HISTORY_WINDOW, BranchPages, run_history
from medic.services.monitor.intake import RunToInspect, decode_run, from_workflow_run
from medic.services.monitor.service import MonitorService
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
            earlier_attempts_passed=1,
            earlier_attempts_failed=1,
            parent_commit_conclusion="success",
            branch_runs_read=True,
            last_green_run_id=flaky.id,  # healed by its re-run: the newest green run of the branch
            last_green_run_attempt=2,
        )


async def test_a_first_attempt_without_an_older_run_has_empty_history(bus: Bus) -> None:
    async with monitor_world(bus) as world:
        run = world.sandbox.add_failed_run(REPO, "compile_error")
        monitor = await world.monitor()
        url = await world.serve(monitor)
        await post_webhook(url, "workflow_run", run_completed_payload(world, run))
        [event] = await wait_for_detected(bus, 1)
        assert event.payload.history == RunHistory(branch_runs_read=True)  # read, and no green run


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


def charged(sandbox: SandboxGitHub) -> int:
    return sum(window.used for window in sandbox.budget.windows.values())


async def test_failures_of_one_branch_inspected_at_once_share_one_page() -> None:
    sandbox = create_sandbox_github(webhook_url=None, webhook_secret="s")
    async with serve_on_free_port(sandbox.app) as url, GitHubClient(base_url=url, token="t") as client:
        green = sandbox.add_passed_run(REPO, head_sha=fake_sha("parent"))
        sandbox.add_passed_run(REPO, branch="elsewhere")  # newer, but another branch
        push = fake_sha("the push")
        scenarios = ("compile_error", "unit_test_assertion", "network_error", "runner_lost")
        failed = [sandbox.add_failed_run(REPO, scenario, head_sha=push) for scenario in scenarios]
        runs = [await received(client, r.id) for r in failed]
        pages = BranchPages(client)
        before = charged(sandbox)
        histories = await asyncio.gather(*(run_history(client, run, pages) for run in runs))
        assert charged(sandbox) - before == 1  # one page of the branch for the whole push
        assert histories == [
            RunHistory(
                earlier_attempts_failed=len(runs) - 1,  # the push's other runs, on the same commit
                parent_commit_conclusion="success",
                branch_runs_read=True,
                last_green_run_id=green.id,
                last_green_run_attempt=1,
            )
        ] * len(runs)


async def test_a_landed_page_serves_every_failure_received_before_it_was_requested() -> None:
    sandbox = create_sandbox_github(webhook_url=None, webhook_secret="s")
    async with serve_on_free_port(sandbox.app) as url, GitHubClient(base_url=url, token="t") as client:
        green = sandbox.add_passed_run(REPO, head_sha=fake_sha("parent"))
        push = fake_sha("the push")
        failed = [sandbox.add_failed_run(REPO, "compile_error", head_sha=push) for _ in range(5)]
        runs = [await received(client, r.id) for r in failed]  # all received, none inspected yet
        pages = BranchPages(client)
        before = charged(sandbox)
        histories = [await run_history(client, run, pages) for run in runs]  # one after another
        assert charged(sandbox) - before == 1  # the first one's page was as fresh as any later
        assert {h.last_green_run_id if h else None for h in histories} == {green.id}

        newer = sandbox.add_passed_run(REPO)  # completes after that page was requested
        late = await received(client, failed[0].id)
        before = charged(sandbox)
        history = await run_history(client, late, pages)
        assert charged(sandbox) - before == 1  # received after the page: a fresh one
        assert history is not None and history.last_green_run_id == newer.id
        history = await run_history(client, runs[1], pages)  # an early one takes the newest page
        assert charged(sandbox) - before == 1 and history is not None
        assert history.last_green_run_id == newer.id


async def test_a_record_from_before_the_stamp_shares_only_a_page_in_flight() -> None:
    sandbox = create_sandbox_github(webhook_url=None, webhook_secret="s")
    async with serve_on_free_port(sandbox.app) as url, GitHubClient(base_url=url, token="t") as client:
        failed = sandbox.add_failed_run(REPO, "compile_error")
        legacy = (await received(client, failed.id)).model_copy(update={"received_at": None})
        pages = BranchPages(client)
        before = charged(sandbox)
        await asyncio.gather(*(run_history(client, legacy, pages) for _ in range(3)))
        assert charged(sandbox) - before == 1
        newer = sandbox.add_passed_run(REPO)
        history = await run_history(client, legacy, pages)
        assert charged(sandbox) - before == 2  # not known when it was received: a landed page is not enough
        assert history is not None and history.last_green_run_id == newer.id


async def received(client: GitHubClient, run_id: int) -> RunToInspect:
    """The run as recorded now (what ``MonitorService.record`` stamps)."""
    run = from_workflow_run(await client.get_run(REPO, run_id), source="webhook")
    return run.model_copy(update={"received_at": utc_now()})


async def test_a_delivery_is_stamped_when_it_is_recorded_not_when_it_is_inspected(bus: Bus) -> None:
    async with monitor_world(bus) as world:
        run = world.sandbox.add_failed_run(REPO, "compile_error")
        github = GitHubClient(base_url=world.github_url, token="t")
        world.clients.append(github)
        service = MonitorService(settings=world.settings(), bus=bus, github=github)  # never started
        await bus.ensure_work_stream(service.intake_stream, [service.intake_subject])
        url = await world.serve(service)
        before = utc_now()
        assert (await post_webhook(url, "workflow_run", run_completed_payload(world, run))).status_code == 202
        after = utc_now()
        recorded = decode_run((await bus.js.get_msg(service.intake_stream, 1)).data)
        assert recorded.run_id == run.id
        assert recorded.received_at is not None and before <= recorded.received_at <= after


@pytest.mark.parametrize("stamp", ["yesterday", "2026-13-45T00:00:00Z", ["2026-01-01T00:00:00Z"], {}])
def test_an_intake_record_with_a_malformed_stamp_is_refused(stamp: object) -> None:
    record = {"repository": REPO, "run_id": 1, "run_attempt": 1, "workflow_name": "ci"}
    assert decode_run(json.dumps(record).encode()).received_at is None  # recorded before the stamp
    good = decode_run(json.dumps(record | {"received_at": "2026-01-01T00:00:00Z"}).encode())
    assert good.received_at is not None and good.received_at.year == 2026
    with pytest.raises(DecodeError, match="received_at"):
        decode_run(json.dumps(record | {"received_at": stamp}).encode())


async def test_a_known_workflow_reads_its_own_runs_and_finds_a_green_run_behind_other_workflows() -> None:
    sandbox = create_sandbox_github(webhook_url=None, webhook_secret="s")
    async with serve_on_free_port(sandbox.app) as url, GitHubClient(base_url=url, token="t") as client:
        green = sandbox.add_passed_run(REPO, head_sha=fake_sha("parent"))
        for _ in range(HISTORY_WINDOW + 5):  # a busy branch: other workflows' runs since the green one
            lint = sandbox.add_passed_run(REPO)
            lint.workflow_path, lint.workflow_id = ".github/workflows/lint.yml", green.workflow_id + 1
        failed = sandbox.add_failed_run(REPO, "compile_error")
        run = await received(client, failed.id)
        assert run.workflow_id == green.workflow_id  # the run says which workflow it is of
        pages = BranchPages(client)
        before = charged(sandbox)
        history = await run_history(client, run, pages)
        assert charged(sandbox) - before == 1
        assert history == RunHistory(
            parent_commit_conclusion="success",
            branch_runs_read=True,
            last_green_run_id=green.id,  # thirty runs of every workflow would not have reached it
            last_green_run_attempt=1,
        )
        unknown = run.model_copy(update={"workflow_id": None})  # a record from before, or a bare job
        history = await run_history(client, unknown, pages)
        assert charged(sandbox) - before == 2 and history is not None
        assert history.last_green_run_id is None and history.parent_commit_conclusion is None
