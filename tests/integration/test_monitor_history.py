"""History for the analyzer: earlier attempts, the same commit's other runs, the parent commit,
the branch's last green run; failures of one branch inspected at once share one page of runs."""

from __future__ import annotations

import asyncio

from medic.bus import Bus
from medic.events import RunHistory
from medic.github.client import GitHubClient
from medic.sandbox import github_payloads as payloads
from medic.sandbox.github import SandboxGitHub, create_sandbox_github
from medic.sandbox.github_server import serve_on_free_port
from medic.sandbox.github_store import fake_sha
from medic.services.monitor.detection import BranchPages, run_history
from medic.services.monitor.intake import from_workflow_run
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


async def test_failures_of_one_branch_inspected_at_once_share_one_page_and_keep_none() -> None:
    sandbox = create_sandbox_github(webhook_url=None, webhook_secret="s")
    async with serve_on_free_port(sandbox.app) as url, GitHubClient(base_url=url, token="t") as client:
        green = sandbox.add_passed_run(REPO, head_sha=fake_sha("parent"))
        sandbox.add_passed_run(REPO, branch="elsewhere")  # newer, but another branch
        push = fake_sha("the push")
        scenarios = ("compile_error", "unit_test_assertion", "network_error", "runner_lost")
        failed = [sandbox.add_failed_run(REPO, scenario, head_sha=push) for scenario in scenarios]
        runs = [from_workflow_run(await client.get_run(REPO, r.id), source="webhook") for r in failed]
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
        newer = sandbox.add_passed_run(REPO)
        history = await run_history(client, runs[0], pages)
        assert charged(sandbox) - before == 2  # a landed page is not kept: history stays fresh
        assert history is not None and history.last_green_run_id == newer.id
