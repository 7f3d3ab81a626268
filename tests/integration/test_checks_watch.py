"""A fix pull request's looks at its checks are conditional requests: the sandbox GitHub over HTTP
answers 304 (free of the rate limit) for check runs that have not changed since the ETag the
wait holds for that head, and the full check runs once one of them changes."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from fastapi import FastAPI, Response

from medic.github.changes import RepositoryChanges
from medic.github.client import GitHubClient
from medic.github.errors import GitHubError
from medic.sandbox.github import SandboxGitHub, create_sandbox_github
from medic.sandbox.github_git import CheckRun
from medic.sandbox.serving import serve_on_free_port
from medic.services.executor.verification import ChecksWatch, look_at_checks

REPO = "octo-org/checks-watch"
TOKEN = "checks-token"


@pytest.fixture
async def github() -> AsyncIterator[tuple[SandboxGitHub, GitHubClient]]:
    sandbox = create_sandbox_github(webhook_url=None, webhook_secret="unused")
    async with (
        serve_on_free_port(sandbox.app) as url,
        GitHubClient(base_url=url, token=TOKEN, max_retry_seconds=1) as client,
    ):
        yield sandbox, client


def charged(sandbox: SandboxGitHub) -> int:
    window = sandbox.budget.windows.get(TOKEN)
    return 0 if window is None else window.used


def head_with_a_check(sandbox: SandboxGitHub, branch: str) -> tuple[str, CheckRun]:
    sandbox.store.repository(REPO)
    sha = sandbox.git.seed(REPO, {"a.txt": branch}, branch=branch)
    check = CheckRun(id=next(sandbox.git._check_ids), head_sha=sha, name=f"test-{branch}")
    sandbox.git.checks[sha] = [check]
    return sha, check


async def test_unchanged_check_runs_answer_not_modified_for_free(
    github: tuple[SandboxGitHub, GitHubClient],
) -> None:
    sandbox, client = github
    changes = RepositoryChanges(client)
    sha, check = head_with_a_check(sandbox, "fix-1")

    first = await changes.checks(REPO, sha)
    spent = charged(sandbox)
    again = await changes.checks(REPO, sha, etag=first.etag)
    free = charged(sandbox) - spent
    check.status, check.conclusion = "completed", "failure"
    changed = await changes.checks(REPO, sha, etag=first.etag)

    assert first.etag and not first.not_modified and (first.total, first.completed) == (1, 0)
    assert again.not_modified and again.etag == first.etag and free == 0
    assert not changed.not_modified and changed.etag != first.etag
    assert changed.done and changed.failed == ("test-fix-1",)
    assert charged(sandbox) - spent == 1


async def test_a_changed_check_run_is_seen_on_the_next_look(
    github: tuple[SandboxGitHub, GitHubClient],
) -> None:
    sandbox, client = github
    watch = ChecksWatch(RepositoryChanges(client))
    sha, check = head_with_a_check(sandbox, "fix-2")
    before = charged(sandbox)

    verdicts = [await look_at_checks(watch, REPO, sha) for _ in range(3)]  # queued, unchanged
    check.status = "in_progress"
    verdicts.append(await look_at_checks(watch, REPO, sha))
    verdicts.append(await look_at_checks(watch, REPO, sha))
    check.status, check.conclusion = "completed", "success"
    verdict = await look_at_checks(watch, REPO, sha)

    assert verdicts == [None] * 5
    assert verdict is not None and verdict.green and "all 1 checks passed" in verdict.detail
    # six looks: one full read per state the check run was seen in (queued, in progress, completed)
    assert charged(sandbox) - before == 3


async def test_a_304_is_trusted_only_against_the_etag_the_watch_holds_for_that_head(
    github: tuple[SandboxGitHub, GitHubClient],
) -> None:
    sandbox, client = github
    watch = ChecksWatch(RepositoryChanges(client))
    red, red_check = head_with_a_check(sandbox, "fix-red")
    green, green_check = head_with_a_check(sandbox, "fix-green")
    red_check.status, red_check.conclusion = "completed", "failure"
    green_check.status, green_check.conclusion = "completed", "success"
    await watch.checks(REPO, red)
    await watch.checks(REPO, green)
    before = charged(sandbox)

    # each head's look sends that head's ETag and gets its own summary back, free
    red_again, green_again = await watch.checks(REPO, red), await watch.checks(REPO, green)
    free = charged(sandbox) - before
    watch.forget(REPO, red)  # a finished wait: the next look holds no ETag, so it reads in full
    red_anew = await watch.checks(REPO, red)

    assert red_again.failed == ("test-fix-red",) and green_again.failed == () and green_again.done
    assert free == 0
    assert not red_anew.not_modified and red_anew.failed == ("test-fix-red",)
    assert charged(sandbox) - before == 1


async def test_a_304_to_a_look_that_sent_no_etag_is_an_error_not_a_verdict() -> None:
    # a server (or proxy) that answers 304 whatever it was asked with, over real HTTP
    lying = FastAPI()

    @lying.get("/repos/{owner}/{repo}/commits/{ref}/check-runs")
    async def not_modified(owner: str, repo: str, ref: str) -> Response:
        return Response(status_code=304, headers={"ETag": 'W/"x"'})

    async with serve_on_free_port(lying) as url, GitHubClient(base_url=url, token=TOKEN) as client:
        watch = ChecksWatch(RepositoryChanges(client))
        with pytest.raises(GitHubError, match="304 to a read without If-None-Match"):
            await look_at_checks(watch, REPO, "0" * 40)
