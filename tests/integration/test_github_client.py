"""The GitHub client against the sandbox GitHub, over real HTTP on a local port."""

from __future__ import annotations

import asyncio
import time
import tracemalloc
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from fastapi import FastAPI, Response
from prometheus_client import REGISTRY

from medic.github.client import GitHubClient
from medic.github.errors import GitHubError, GitHubUnavailable, NotFound, RateLimitExhausted
from medic.github.models import WorkflowRun
from medic.sandbox.github import SandboxGitHub, create_sandbox_github
from medic.sandbox.serving import serve_on_free_port

REPO = "octo-org/client-tests"


@pytest.fixture(scope="module")
async def sandbox() -> AsyncIterator[tuple[SandboxGitHub, str]]:
    sandbox = create_sandbox_github(webhook_url=None, webhook_secret="test-secret", rerun_delay_seconds=0.2)
    async with serve_on_free_port(sandbox.app) as url:
        yield sandbox, url


@pytest.fixture
async def client(sandbox: tuple[SandboxGitHub, str]) -> AsyncIterator[GitHubClient]:
    async with GitHubClient(base_url=sandbox[1], token="test-token", max_retry_seconds=8.0) as client:
        yield client


async def set_modes(url: str, **modes: object) -> None:
    async with httpx.AsyncClient() as http:
        (await http.post(f"{url}/_sandbox/modes", json=modes)).raise_for_status()


async def test_get_run_maps_the_fields_the_monitor_needs(
    sandbox: tuple[SandboxGitHub, str], client: GitHubClient
) -> None:
    run = sandbox[0].add_failed_run(
        REPO, "unit_test_assertion", branch="feature/pricing", pull_request_numbers=[7]
    )

    got = await client.get_run(REPO, run.id)

    assert (got.id, got.run_attempt, got.status, got.conclusion) == (run.id, 1, "completed", "failure")
    assert (got.repository, got.head_branch, got.head_sha) == (REPO, "feature/pricing", run.head_sha)
    assert got.head_commit_message == "Apply discounts before tax"
    assert got.pull_request_numbers == (7,)
    assert got.name == "CI" and got.path == ".github/workflows/ci.yml" and got.actor_login == "octocat"
    assert got.html_url.endswith(f"/actions/runs/{run.id}") and got.run_started_at is not None
    remaining = REGISTRY.get_sample_value("medic_github_ratelimit_remaining", {"resource": "core"})
    assert remaining is not None and remaining < 5000


async def test_unknown_run_is_not_found(client: GitHubClient) -> None:
    with pytest.raises(NotFound):
        await client.get_run(REPO, 1)


async def test_failed_jobs_name_their_failed_steps(
    sandbox: tuple[SandboxGitHub, str], client: GitHubClient
) -> None:
    run = sandbox[0].add_failed_run(REPO, "lint_errors")

    jobs = await client.list_failed_jobs(REPO, run.id)

    assert [(job.name, job.conclusion, job.failed_steps, job.run_attempt) for job in jobs] == [
        ("lint", "failure", ("Lint",), 1)
    ]


async def test_job_log_follows_the_redirect_and_reads_text(
    sandbox: tuple[SandboxGitHub, str], client: GitHubClient
) -> None:
    run = sandbox[0].add_failed_run(REPO, "dependency_conflict")
    [job] = await client.list_failed_jobs(REPO, run.id)

    log = await client.fetch_job_log(REPO, job.id)

    assert log.unavailable_reason is None and not log.truncated
    assert "ERROR: ResolutionImpossible" in log.text
    assert "##[error]Process completed with exit code 1." in log.text
    assert log.total_bytes == len(log.text.encode())


def _huge_log(total: int, final_line: bytes) -> Iterator[bytes]:
    line = b"2026-11-25T10:00:01.1234567Z building module 0123456789abcdef 0123456789abcdef 0123456789\n"
    chunk = line * (64 * 1024 // len(line))
    sent = 0
    while sent < total:
        yield chunk
        sent += len(chunk)
    yield final_line


async def test_a_50_mib_log_is_streamed_into_a_bounded_tail(
    sandbox: tuple[SandboxGitHub, str], client: GitHubClient
) -> None:
    final = b"2026-11-25T10:09:59.0000000Z ##[error]Process completed with exit code 2.\n"
    run = sandbox[0].add_failed_run(REPO, "compile_error", log=lambda: _huge_log(50 * 1024 * 1024, final))
    job_id = run.latest.jobs[0].id

    tracemalloc.start()
    try:
        log = await client.fetch_job_log(REPO, job_id, max_bytes=512 * 1024)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert peak < 8 * 1024 * 1024, f"peak {peak} bytes"
    assert log.total_bytes > 50 * 1024 * 1024 and log.truncated
    assert log.text.startswith(f"[… {log.dropped_bytes} bytes dropped …]\n2026-11-25T")
    assert log.text.endswith(final.decode())
    assert len(log.text.encode()) < 512 * 1024 + 100


async def test_non_utf8_bytes_are_replaced_not_fatal(
    sandbox: tuple[SandboxGitHub, str], client: GitHubClient
) -> None:
    raw = b"2026-11-25T10:00:01.1234567Z caf\xe9 \xff\xfe\n2026-11-25T10:00:02.1234567Z ##[error]boom\n"
    run = sandbox[0].add_failed_run(REPO, "compile_error", log=lambda: iter([raw]))

    log = await client.fetch_job_log(REPO, run.latest.jobs[0].id)

    assert "\ufffd" in log.text and "##[error]boom" in log.text


async def test_missing_logs_give_a_reason_instead_of_an_error(
    sandbox: tuple[SandboxGitHub, str], client: GitHubClient
) -> None:
    run = sandbox[0].add_failed_run(REPO, "compile_error", log_available=False)

    expired = await client.fetch_job_log(REPO, run.latest.jobs[0].id)
    unknown = await client.fetch_job_log(REPO, 42)

    assert expired.text == "" and expired.unavailable_reason and "404" in expired.unavailable_reason
    assert unknown.unavailable_reason is not None


async def _wait_completed(client: GitHubClient, run_id: int, attempt: int) -> WorkflowRun:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        run = await client.get_run(REPO, run_id)
        if run.run_attempt == attempt and run.status == "completed":
            return run
        await asyncio.sleep(0.05)
    raise AssertionError("re-run did not complete")


@pytest.mark.parametrize(
    ("scenario", "expected"), [("flaky_test", "success"), ("unit_test_assertion", "failure")]
)
async def test_rerun_failed_jobs_heals_only_transient_failures(
    sandbox: tuple[SandboxGitHub, str], client: GitHubClient, scenario: str, expected: str
) -> None:
    run = sandbox[0].add_failed_run(REPO, scenario)

    await client.rerun_failed_jobs(REPO, run.id)
    queued = await client.get_run(REPO, run.id)
    finished = await _wait_completed(client, run.id, 2)

    assert queued.run_attempt == 2 and queued.status in {"queued", "in_progress"}
    assert finished.conclusion == expected
    failed = await client.list_failed_jobs(REPO, run.id)
    assert [job.run_attempt for job in failed] == ([] if expected == "success" else [2])


async def test_rerun_workflow_starts_a_new_attempt(
    sandbox: tuple[SandboxGitHub, str], client: GitHubClient
) -> None:
    run = sandbox[0].add_failed_run(REPO, "network_error")

    await client.rerun_workflow(REPO, run.id)

    assert (await _wait_completed(client, run.id, 2)).conclusion == "success"


async def test_list_runs_uses_etags(sandbox: tuple[SandboxGitHub, str], client: GitHubClient) -> None:
    repo = "octo-org/etag-tests"
    sandbox[0].add_failed_run(repo, "lint_errors")
    first = await client.list_runs(repo, status="failure")

    again = await client.list_runs(repo, status="failure", etag=first.etag)
    sandbox[0].add_failed_run(repo, "lint_errors")
    changed = await client.list_runs(repo, status="failure", etag=first.etag)

    assert len(first.runs) == 1 and first.etag and not first.not_modified
    assert again.not_modified and again.runs == ()
    assert not changed.not_modified and len(changed.runs) == 2 and changed.etag != first.etag


async def test_workflow_runs_are_one_workflows_newest_filtered_by_branch_and_status(
    sandbox: tuple[SandboxGitHub, str], client: GitHubClient
) -> None:
    repo = "octo-org/workflow-runs"
    ci = [sandbox[0].add_passed_run(repo) for _ in range(3)]
    ci.append(sandbox[0].add_failed_run(repo, "lint_errors"))
    sandbox[0].add_passed_run(repo, branch="feature/x")
    lint = sandbox[0].add_passed_run(repo)
    lint.workflow_path, lint.workflow_id = (
        ".github/workflows/lint.yml",
        ci[0].workflow_id + 1,
    )  # another workflow

    page = await client.list_workflow_runs(
        repo, ci[0].workflow_id, branch="main", status="completed", per_page=3
    )
    assert [run.id for run in page.runs] == [run.id for run in reversed(ci)][
        :3
    ]  # newest first, this workflow's
    assert {run.workflow_id for run in page.runs} == {ci[0].workflow_id}
    greens = await client.list_workflow_runs(repo, ci[0].workflow_id, branch="main", status="success")
    assert [run.id for run in greens.runs] == [run.id for run in reversed(ci[:3])]
    [other] = (await client.list_workflow_runs(repo, lint.workflow_id)).runs
    assert other.id == lint.id and other.path == ".github/workflows/lint.yml"
    with pytest.raises(NotFound):
        await client.list_workflow_runs(repo, 1)  # no such workflow


async def test_delete_caches_counts_deleted_caches(
    sandbox: tuple[SandboxGitHub, str], client: GitHubClient
) -> None:
    sandbox[0].add_cache(REPO, "Linux-pip-3f2a")
    sandbox[0].add_cache(REPO, "Linux-pip-3f2a", ref="refs/heads/feature")

    assert await client.delete_caches(REPO, "Linux-pip-3f2a") == 2
    assert await client.delete_caches(REPO, "Linux-pip-3f2a") == 0


async def test_exhausted_rate_limit_waits_until_reset(
    sandbox: tuple[SandboxGitHub, str], client: GitHubClient
) -> None:
    run = sandbox[0].add_failed_run(REPO, "lint_errors")
    await set_modes(sandbox[1], rate_limit_exhausted_for_seconds=1.0)
    started = time.monotonic()

    got = await client.get_run(REPO, run.id)

    assert got.id == run.id and time.monotonic() - started >= 0.9


async def test_rate_limit_beyond_the_retry_budget_raises(sandbox: tuple[SandboxGitHub, str]) -> None:
    run = sandbox[0].add_failed_run(REPO, "lint_errors")
    await set_modes(sandbox[1], rate_limit_exhausted_for_seconds=30)
    try:
        async with GitHubClient(base_url=sandbox[1], token="t", max_retry_seconds=1.0) as impatient:
            with pytest.raises(RateLimitExhausted) as caught:
                await impatient.get_run(REPO, run.id)
    finally:
        await set_modes(sandbox[1], rate_limit_exhausted_for_seconds=0)
    assert caught.value.reset_at is not None and caught.value.reset_at.timestamp() > time.time() + 20


async def test_a_burst_of_5xx_is_retried(sandbox: tuple[SandboxGitHub, str], client: GitHubClient) -> None:
    run = sandbox[0].add_failed_run(REPO, "lint_errors")
    route = {"method_route": "GET /repos/{owner}/{repo}/actions/runs/{run_id}"}
    before = REGISTRY.get_sample_value("medic_github_requests_total", route | {"status": "503"}) or 0.0
    await set_modes(sandbox[1], server_errors=3)

    got = await client.get_run(REPO, run.id)

    assert got.id == run.id
    assert (REGISTRY.get_sample_value("medic_github_requests_total", route | {"status": "503"}) or 0) > before


async def test_persistent_5xx_becomes_unavailable(sandbox: tuple[SandboxGitHub, str]) -> None:
    await set_modes(sandbox[1], server_errors=1000)
    try:
        async with GitHubClient(base_url=sandbox[1], token="t", max_retry_seconds=1.0) as impatient:
            with pytest.raises(GitHubUnavailable):
                await impatient.get_run(REPO, 1)
    finally:
        await set_modes(sandbox[1], server_errors=0)


async def test_connection_refused_becomes_unavailable() -> None:
    async with GitHubClient(base_url="http://127.0.0.1:9", max_retry_seconds=0.5) as nowhere:
        with pytest.raises(GitHubUnavailable):
            await nowhere.get_run(REPO, 1)


async def test_works_when_the_sandbox_is_mounted_under_a_prefix() -> None:
    sandbox = create_sandbox_github(webhook_url=None, webhook_secret="s")
    outer = FastAPI()
    outer.mount("/sandbox/github", sandbox.app)
    run = sandbox.add_failed_run(REPO, "out_of_memory")
    async with (
        serve_on_free_port(outer) as url,
        GitHubClient(base_url=f"{url}/sandbox/github", token="t") as mounted,
    ):
        got = await mounted.get_run(REPO, run.id)
        [job] = await mounted.list_failed_jobs(REPO, run.id)
        log = await mounted.fetch_job_log(REPO, job.id)
        async with httpx.AsyncClient() as http:
            body = (await http.get(f"{url}/sandbox/github/repos/{REPO}/actions/runs/{run.id}")).json()

    assert got.id == run.id and "exit code 137" in log.text
    assert body["jobs_url"].startswith(f"{url}/sandbox/github/repos/")


async def test_no_more_than_max_in_flight_requests_reach_github_at_once(
    sandbox: tuple[SandboxGitHub, str],
) -> None:
    """GitHub's secondary limits punish concurrent requests per token, and a pool of many
    connections costs CPU per request: 24 callers share 3 slots, and all 24 are answered."""
    github, url = sandbox
    run = github.add_failed_run(REPO, "unit_test_assertion")
    job_id = run.latest.jobs[0].id
    await set_modes(url, latency_seconds=0.05)
    try:
        async with GitHubClient(base_url=url, token="in-flight-token", max_in_flight=3) as client:
            runs = await asyncio.gather(*(client.get_run(REPO, run.id) for _ in range(16)))
            logs = await asyncio.gather(*(client.fetch_job_log(REPO, job_id) for _ in range(8)))
    finally:
        await set_modes(url, latency_seconds=0)
    assert {r.id for r in runs} == {run.id} and all(log.text for log in logs)
    window = github.budget.windows["in-flight-token"]
    assert window.most_in_flight == 3
    assert window.used >= 24


async def test_a_304_to_a_read_that_sent_no_etag_is_an_error_not_a_missing_run() -> None:
    # a faulty proxy or server: "not modified" from nothing cannot stand for a run
    liar = FastAPI()

    @liar.get("/repos/{owner}/{repo}/actions/runs/{run_id}")
    async def not_modified(owner: str, repo: str, run_id: int) -> Response:
        return Response(status_code=304, headers={"ETag": '"made-up"'})

    async with serve_on_free_port(liar) as url, GitHubClient(base_url=url, token="t") as lied_to:
        with pytest.raises(GitHubError, match="304 to a read without If-None-Match"):
            await lied_to.get_run(REPO, 7)
        with pytest.raises(GitHubError, match="304 to a read without If-None-Match"):
            await lied_to.get_run_if_changed(REPO, 7, etag=None)
        unchanged, etag = await lied_to.get_run_if_changed(REPO, 7, etag='"mine"')
    assert unchanged is None and etag == '"made-up"'


async def test_the_etag_kept_is_the_answers_own_never_an_old_one_for_a_new_body() -> None:
    # a server (or proxy) that drops ETag headers: the old tag must not stand for the new body
    from medic.github.changes import RepositoryChanges

    untagged = FastAPI()
    answers: list[int] = []

    @untagged.get("/repos/{owner}/{repo}/actions/runs")
    async def runs(owner: str, repo: str) -> Response:
        status = answers.pop(0)
        return Response(status_code=status, content=b"" if status == 304 else b'{"workflow_runs": []}')

    @untagged.get("/repos/{owner}/{repo}/commits/{ref}/check-runs")
    async def check_runs(owner: str, repo: str, ref: str) -> Response:
        return Response(status_code=304)

    async with serve_on_free_port(untagged) as url, GitHubClient(base_url=url, token="t") as client:
        answers[:] = [200, 304]
        full = await client.list_runs(REPO, etag='"old"')
        unchanged = await client.list_runs(REPO, etag='"old"')
        answers.append(304)
        with pytest.raises(GitHubError, match="304 to a read without If-None-Match"):
            await client.list_runs(REPO, etag=None)
        with pytest.raises(GitHubError, match="304 to a read without If-None-Match"):
            await RepositoryChanges(client).checks(REPO, "a" * 40)
    assert full.etag is None and not full.not_modified  # a body without a tag has none
    assert unchanged.not_modified and unchanged.etag == '"old"'  # a 304 keeps the tag it answered
