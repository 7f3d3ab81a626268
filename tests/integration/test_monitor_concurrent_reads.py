"""A failure's reads from GitHub go out together: the logs of its failed jobs at once, and the
branch's history beside them; every job is still reported, with its log or the reason it has none,
in the order GitHub lists them."""

from __future__ import annotations

from medic.bus import Bus
from medic.github.client import GitHubClient
from medic.sandbox.github import create_sandbox_github
from medic.sandbox.serving import serve_on_free_port
from medic.services.monitor.detection import failed_jobs
from medic.services.monitor.intake import from_workflow_run
from tests.integration.monitor_support import (
    monitor_world,
    post_webhook,
    run_completed_payload,
    wait_for_detected,
)
from tests.integration.request_gate import RequestGate

REPO = "acme/api"
LOGS = r"/actions/jobs/\d+/logs$"


async def test_the_logs_of_several_failed_jobs_are_read_at_once_and_reported_in_order() -> None:
    sandbox = create_sandbox_github(webhook_url=None, webhook_secret="s")
    run = sandbox.add_failed_run(REPO, "unit_test_assertion", log_available=False)
    second = run.latest.jobs[1]
    second.conclusion = "failure"  # both jobs broke: one log expired, one log there
    gate = RequestGate(sandbox.app, LOGS, expected=2)
    async with serve_on_free_port(gate) as url, GitHubClient(base_url=url, token="t") as client:
        inspected = from_workflow_run(await client.get_run(REPO, run.id), source="webhook")
        jobs = await failed_jobs(client, inspected, log_tail_bytes=64 * 1024, wait_for_rate_limit=True)
    assert gate.most == 2  # both log requests were on the wire together
    assert [job.job_id for job in jobs] == [job.id for job in run.latest.jobs]
    expired, present = jobs
    assert expired.log_unavailable_reason and not expired.log_tail
    assert present.log_unavailable_reason is None and present.log_tail.strip()


async def test_the_history_is_read_while_the_logs_are(bus: Bus) -> None:
    gate: RequestGate | None = None

    def gated(app: object) -> RequestGate:
        nonlocal gate
        gate = RequestGate(app, LOGS + r"|/runs$", expected=2)
        return gate

    async with monitor_world(bus, wrap=gated) as world:
        run = world.sandbox.add_failed_run(REPO, "compile_error")
        monitor = await world.monitor(catch_up_polling=False)  # only the failure's own reads
        url = await world.serve(monitor)
        assert (await post_webhook(url, "workflow_run", run_completed_payload(world, run))).status_code == 202
        [event] = await wait_for_detected(bus, 1)
    assert gate is not None and gate.most == 2  # the branch's page and the job's log together
    assert sorted(path.rsplit("/", 1)[-1] for path in gate.seen) == ["logs", "runs"]
    assert event.payload.history is not None and event.payload.history.branch_runs_read
    assert event.payload.failed_jobs[0].log_tail.strip()
