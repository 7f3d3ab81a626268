"""The analyzer compares a failing job's log with the last green run of the same job, found
through the GitHub client (sandbox GitHub over real HTTP, cache in a real JetStream bucket),
and says so in AnalysisCompleted; it spends no request when the rate-limit budget is low."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from prometheus_client import REGISTRY

from medic.bus import Bucket, Bus, open_key_value
from medic.events import (
    AnalysisCompleted,
    FailedJob,
    FailureDetected,
    FailureDetectedPayload,
    RunHistory,
    decode_event,
    derive_failure_id,
)
from medic.github.client import GitHubClient
from medic.github.ratelimit import RATELIMIT_REMAINING
from medic.sandbox.github import SandboxGitHub, create_sandbox_github
from medic.sandbox.serving import serve_on_free_port
from medic.services.analyzer.green_baseline import NONE_TTL_SECONDS, GreenBaselines
from medic.services.analyzer.knowledge import default_knowledge_base
from medic.services.analyzer.service import AnalyzerService

REPO = "acme/green"
SCENARIOS = ("network_error", "runner_lost", "compile_error")


@pytest.fixture
async def github() -> AsyncIterator[tuple[SandboxGitHub, GitHubClient]]:
    sandbox = create_sandbox_github(webhook_url=None, webhook_secret="s", rerun_delay_seconds=0.2)
    # the process-wide gauge still holds what an earlier test's GitHub said (rate-limit tests
    # spend theirs); this fresh one has its whole budget, as its first answer will say
    RATELIMIT_REMAINING.labels(resource="core").set(sandbox.budget.token_limit)
    async with serve_on_free_port(sandbox.app) as url, GitHubClient(base_url=url, token="t") as client:
        yield sandbox, client


def outcome(name: str) -> float:
    return REGISTRY.get_sample_value("medic_analyzer_baselines_total", {"outcome": name}) or 0.0


def failure_of(sandbox: SandboxGitHub, scenario: str = "network_error") -> FailureDetectedPayload:
    run = sandbox.add_failed_run(REPO, scenario)
    job = next(j for j in sandbox.store.jobs.values() if j.run_id == run.id and j.conclusion == "failure")
    return FailureDetectedPayload(
        repository=REPO,
        run_id=run.id,
        run_attempt=1,
        workflow_name=run.workflow_name,
        workflow_path=run.workflow_path,
        branch="main",
        detected_at=datetime.now(UTC),
        failed_jobs=(FailedJob(job_id=job.id, name=job.name, log_tail="npm ERR! code ECONNRESET\n"),),
    )


async def test_the_last_green_log_of_the_same_job_is_found_then_cached(
    bus: Bus, github: tuple[SandboxGitHub, GitHubClient]
) -> None:
    sandbox, client = github
    failure = failure_of(sandbox)
    green_run = sandbox.add_passed_run(REPO, job_names=(failure.failed_jobs[0].name, "lint"))
    sandbox.add_passed_run(REPO, job_names=("some other job",))  # newer, but not the same job
    kv = await open_key_value(bus.js, bus.topology.bucket(Bucket.GREEN_LOGS))
    try:
        finder = GreenBaselines(client, kv)
        found = await finder.for_job(failure, failure.failed_jobs[0])
        assert found is not None and found.run_id == green_run.id
        assert "Run make check" in found.text
        cached_before = outcome("cache")
        again = await finder.for_job(failure, failure.failed_jobs[0])
        assert again == found and outcome("cache") == cached_before + 1
    finally:
        with contextlib.suppress(Exception):
            await bus.js.delete_key_value(bus.topology.bucket(Bucket.GREEN_LOGS))


def jobs_requests() -> float:
    route = "GET /repos/{owner}/{repo}/actions/runs/{run_id}/jobs"
    return (
        REGISTRY.get_sample_value("medic_github_requests_total", {"method_route": route, "status": "200"})
        or 0.0
    )


async def test_a_green_runs_jobs_are_asked_for_once_per_attempt(
    github: tuple[SandboxGitHub, GitHubClient],
) -> None:
    sandbox, client = github
    first, second = failure_of(sandbox), failure_of(sandbox, "runner_lost")
    assert first.failed_jobs[0].name != second.failed_jobs[0].name or first.run_id != second.run_id
    sandbox.add_passed_run(REPO, job_names=("some other job",))  # searched, holds neither job
    finder = GreenBaselines(client, None, none_ttl_seconds=0)  # every lookup searches again
    before = jobs_requests()
    await finder.for_job(first, first.failed_jobs[0])
    asked = jobs_requests() - before
    assert asked >= 1
    await finder.for_job(second, second.failed_jobs[0])
    await finder.for_job(first, first.failed_jobs[0])
    assert jobs_requests() - before == asked
    newer = sandbox.add_passed_run(REPO, job_names=(first.failed_jobs[0].name,))
    found = await finder.for_job(first, first.failed_jobs[0])
    assert found is not None and found.run_id == newer.id
    assert jobs_requests() - before == asked + 1


async def test_no_request_is_spent_when_the_budget_is_low(github: tuple[SandboxGitHub, GitHubClient]) -> None:
    sandbox, client = github
    failure = failure_of(sandbox)
    sandbox.add_passed_run(REPO, job_names=(failure.failed_jobs[0].name,))
    gauge = RATELIMIT_REMAINING.labels(resource="core")
    before = REGISTRY.get_sample_value("medic_github_ratelimit_remaining", {"resource": "core"})
    gauge.set(3)
    try:
        low = outcome("budget_low")
        assert await GreenBaselines(client, None).for_job(failure, failure.failed_jobs[0]) is None
        assert outcome("budget_low") == low + 1
    finally:
        gauge.set(before if before is not None else 5000)


async def test_a_job_without_a_green_run_is_analysed_alone(
    github: tuple[SandboxGitHub, GitHubClient],
) -> None:
    sandbox, client = github
    failure = failure_of(sandbox, "runner_lost")
    assert await GreenBaselines(client, None).for_job(failure, failure.failed_jobs[0]) is None


async def test_analysis_completed_says_which_green_run_was_compared(
    bus: Bus, github: tuple[SandboxGitHub, GitHubClient]
) -> None:
    sandbox, client = github
    failure = failure_of(sandbox)
    green_run = sandbox.add_passed_run(REPO, job_names=(failure.failed_jobs[0].name,))
    analyzer = AnalyzerService(
        bus=bus, knowledge_for=lambda _: default_knowledge_base("re2"), model=None, github=client
    )
    await analyzer.start()
    event = FailureDetected(
        failure_id=derive_failure_id(REPO, failure.run_id, 1), actor="monitor", payload=failure
    )
    try:
        await analyzer.handle(event, None)  # type: ignore[arg-type]
        sub = await bus.js.pull_subscribe(
            bus.topology.subject("AnalysisCompleted"), stream=bus.topology.stream
        )
        [message] = await sub.fetch(1, timeout=5)
        completed = decode_event(message.data)
        assert isinstance(completed, AnalysisCompleted)
        assert completed.payload.baseline_run_id == green_run.id
        await sub.unsubscribe()
    finally:
        for bucket in (Bucket.GREEN_LOGS, Bucket.ANALYSIS_CACHE):
            with contextlib.suppress(Exception):
                await bus.js.delete_key_value(bus.topology.bucket(bucket))


def sandbox_requests(sandbox: SandboxGitHub) -> int:
    """Requests the sandbox GitHub counted against its rate limits (as GitHub would)."""
    return sum(window.used for window in sandbox.budget.windows.values())


def list_runs_requests() -> float:
    route = "GET /repos/{owner}/{repo}/actions/runs"
    return (
        REGISTRY.get_sample_value("medic_github_requests_total", {"method_route": route, "status": "200"})
        or 0.0
    )


def told(failure: FailureDetectedPayload, history: RunHistory | None) -> FailureDetectedPayload:
    return failure.model_copy(update={"history": history})


async def test_a_green_run_the_monitor_named_is_compared_without_a_search(
    github: tuple[SandboxGitHub, GitHubClient],
) -> None:
    sandbox, client = github
    failure = failure_of(sandbox)
    job = failure.failed_jobs[0]
    named = sandbox.add_passed_run(REPO, job_names=(job.name,))
    sandbox.add_passed_run(REPO, job_names=(job.name,))  # newer: a search would have taken this one
    history = RunHistory(branch_runs_read=True, last_green_run_id=named.id, last_green_run_attempt=1)
    same_push = [told(failure, history)] + [told(failure_of(sandbox), history) for _ in range(3)]
    runs_before, before = list_runs_requests(), sandbox_requests(sandbox)
    finder = GreenBaselines(client, None)
    found = await asyncio.gather(*(finder.for_job(f, f.failed_jobs[0]) for f in same_push))
    assert found[0] is not None and found[0].run_id == named.id and "Run make check" in found[0].text
    assert found == [found[0]] * len(same_push)
    assert list_runs_requests() == runs_before
    assert sandbox_requests(sandbox) - before == 2  # the named run's jobs, then the job's log: once


async def test_a_named_green_run_without_the_job_falls_back_to_every_branch(
    github: tuple[SandboxGitHub, GitHubClient],
) -> None:
    sandbox, client = github
    failure = failure_of(sandbox)
    job = failure.failed_jobs[0]
    elsewhere = sandbox.add_passed_run(REPO, branch="release", job_names=(job.name,))
    named = sandbox.add_passed_run(REPO, job_names=("a job added since",))
    history = RunHistory(branch_runs_read=True, last_green_run_id=named.id, last_green_run_attempt=1)
    runs_before = list_runs_requests()
    found = await GreenBaselines(client, None).for_job(told(failure, history), job)
    assert found is not None and found.run_id == elsewhere.id
    assert list_runs_requests() == runs_before + 1  # every branch only: the monitor read this one


async def test_failures_of_one_push_without_a_green_run_share_one_search_then_remember_it(
    github: tuple[SandboxGitHub, GitHubClient],
) -> None:
    sandbox, client = github
    failures = [told(failure_of(sandbox, s), RunHistory(branch_runs_read=True)) for s in SCENARIOS * 4]
    assert len({f.failed_jobs[0].name for f in failures}) > 1  # several jobs of one workflow
    now = [0.0]
    finder = GreenBaselines(client, None, clock=lambda: now[0])
    before = sandbox_requests(sandbox)
    found = await asyncio.gather(*(finder.for_job(f, f.failed_jobs[0]) for f in failures))
    assert found == [None] * len(failures)
    assert sandbox_requests(sandbox) - before == 1  # every branch searched once, for all of them
    later = told(failure_of(sandbox, SCENARIOS[0]), RunHistory(branch_runs_read=True))
    none_cached = outcome("none_cached")
    assert await finder.for_job(later, later.failed_jobs[0]) is None
    assert sandbox_requests(sandbox) - before == 1 and outcome("none_cached") == none_cached + 1
    now[0] += NONE_TTL_SECONDS
    assert await finder.for_job(later, later.failed_jobs[0]) is None
    assert sandbox_requests(sandbox) - before == 2  # forgotten after the TTL: asked again


async def test_an_event_from_an_older_monitor_searches_the_branch_then_every_branch(
    github: tuple[SandboxGitHub, GitHubClient],
) -> None:
    sandbox, client = github
    failures = [told(failure_of(sandbox, s), None) for s in SCENARIOS * 2]
    finder = GreenBaselines(client, None)
    before = sandbox_requests(sandbox)
    found = await asyncio.gather(*(finder.for_job(f, f.failed_jobs[0]) for f in failures))
    assert found == [None] * len(failures)
    assert sandbox_requests(sandbox) - before == 2  # the branch, then every branch; once for all


async def test_a_remembered_none_gives_way_to_a_green_run_the_monitor_names(
    github: tuple[SandboxGitHub, GitHubClient],
) -> None:
    sandbox, client = github
    first = told(failure_of(sandbox), RunHistory(branch_runs_read=True))
    job = first.failed_jobs[0]
    finder = GreenBaselines(client, None)
    assert await finder.for_job(first, job) is None
    green = sandbox.add_passed_run(REPO, job_names=(job.name,))
    unnamed = told(failure_of(sandbox), RunHistory(branch_runs_read=True))
    assert await finder.for_job(unnamed, unnamed.failed_jobs[0]) is None  # still believed: no request
    history = RunHistory(branch_runs_read=True, last_green_run_id=green.id, last_green_run_attempt=1)
    named = told(failure_of(sandbox), history)
    found = await finder.for_job(named, named.failed_jobs[0])
    assert found is not None and found.run_id == green.id
    assert await finder.for_job(unnamed, unnamed.failed_jobs[0]) == found  # and the none is forgotten
