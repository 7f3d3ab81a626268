"""Turning a failed run attempt into a FailureDetected with its failed jobs and their logs.

A failure is never dropped for want of a log: when GitHub cannot give one (gone past
retention, no permission, rate limit) the job is still reported, with the reason.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from datetime import datetime
from typing import Any, TypeVar

from medic.conclusions import run_failed
from medic.events import (
    FailedJob,
    FailureDetected,
    FailureDetectedPayload,
    RunHistory,
    derive_event_id,
    derive_failure_id,
    utc_now,
)
from medic.github.client import GitHubClient
from medic.github.errors import GitHubError, RateLimitExhausted
from medic.github.models import Job, WorkflowRun
from medic.logstore import LogStore, inline_budget
from medic.redact import redact
from medic.services.monitor.branch_pages import FreshPages
from medic.services.monitor.intake import RunToInspect, from_workflow_run
from medic.telemetry import logger

log = logger(__name__)
T = TypeVar("T")

PASSED = frozenset({"success", "skipped", "neutral"})
HISTORY_WINDOW = 30
"""Completed runs of the branch (every workflow) looked at for the same commit, the parent and the
last green run when the run's workflow is not known: one page."""
WORKFLOW_HISTORY_WINDOW = 10
"""The same, of the run's own workflow: ten of its runs reach further back than thirty of all."""


async def failed_jobs(
    github: GitHubClient,
    run: RunToInspect,
    *,
    log_tail_bytes: int,
    logs: LogStore | None = None,
    wait_for_rate_limit: bool = False,
) -> list[FailedJob]:
    """With ``wait_for_rate_limit``, a spent rate limit raises (the caller defers until the reset)
    instead of reporting the log missing: a failure analysed without its log is a wrong answer.

    The failed jobs' logs are read at once (the client bounds the requests on the wire): a run
    whose five jobs broke waits for its slowest log, not for the sum of them.
    """
    try:
        jobs = await github.list_failed_jobs(run.repository, run.run_id)
    except RateLimitExhausted:
        if wait_for_rate_limit:
            raise
        return [FailedJob(job_id=0, name="(jobs unavailable)", log_unavailable_reason="jobs: rate limited")]
    except GitHubError as exc:
        return [FailedJob(job_id=0, name="(jobs unavailable)", log_unavailable_reason=f"jobs: {exc}")]
    budget = inline_budget(len(jobs))
    failure_id = derive_failure_id(run.repository, run.run_id, run.run_attempt)

    async def with_log(job: Job) -> FailedJob:
        try:
            log = await github.fetch_job_log(run.repository, job.id, max_bytes=log_tail_bytes)
            text, reason, truncated = log.text, log.unavailable_reason, log.truncated
        except RateLimitExhausted as exc:
            if wait_for_rate_limit:
                raise
            text, reason, truncated = "", f"log: {exc}", False
        except GitHubError as exc:
            text, reason, truncated = "", f"log: {exc}", False
        text = redact(text)
        ref = None
        if len(text.encode()) > budget:
            if logs is not None:
                ref = await logs.put(failure_id, job.id, text)
            text = text.encode()[-budget:].decode(errors="ignore")
            truncated = True
        return FailedJob(
            job_id=job.id,
            name=job.name,
            failed_steps=tuple(job.failed_steps),
            log_tail=text,
            log_ref=ref,
            log_truncated=truncated,
            log_unavailable_reason=reason,
        )

    return await all_or_none([with_log(job) for job in jobs])


async def all_or_none(calls: list[Coroutine[Any, Any, T]]) -> list[T]:
    """Every call's result in order; the first to raise cancels the rest (no orphan requests)."""
    tasks = [asyncio.ensure_future(call) for call in calls]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


async def complete_partial(github: GitHubClient, run: RunToInspect) -> RunToInspect:
    """Fill in an attempt known from a ``workflow_job`` delivery; keep what we had if GitHub can't say."""
    if not run.partial:
        return run
    try:
        fetched = await github.get_run(run.repository, run.run_id)
    except GitHubError as exc:
        log.warning("run_details_unavailable", repository=run.repository, run_id=run.run_id, error=str(exc))
        return run
    full = from_workflow_run(fetched, source=run.source, repository=run.repository)
    same_attempt = fetched.run_attempt == run.run_attempt
    return full.model_copy(
        update={
            "run_attempt": run.run_attempt,
            "delivery_id": run.delivery_id,
            "received_at": run.received_at,
            "conclusion": fetched.conclusion if run_failed(fetched.conclusion) else "failure",
            "updated_at": fetched.updated_at if same_attempt and fetched.status == "completed" else None,
        }
    )


class BranchPages:
    """The branch's newest completed runs of the failed run's workflow, one request for every
    failure it is fresh enough for.

    A page requested at or after a failure was received holds every run that completed before
    then, so it serves that failure as well as a page fetched now would (see
    :mod:`.branch_pages`); a failure received later gets a fresh page. With the workflow known
    (every webhook and poll of a run says it) the page is that workflow's own runs on the branch,
    a short page; without it, a longer page of every workflow's runs on the branch.
    """

    def __init__(self, github: GitHubClient) -> None:
        self.github = github
        self.pages = FreshPages("monitor_branch_runs")

    async def newest(self, run: RunToInspect) -> tuple[WorkflowRun, ...]:
        repository, branch, workflow = run.repository, run.branch, run.workflow_id
        key = (repository.lower(), branch, "" if workflow is None else str(workflow))
        return await self.pages.get(key, run.received_at, lambda: self._fetch(repository, branch, workflow))

    async def _fetch(self, repository: str, branch: str, workflow: int | None) -> tuple[WorkflowRun, ...]:
        if workflow is not None:
            mine = await self.github.list_workflow_runs(
                repository, workflow, branch=branch, status="completed", per_page=WORKFLOW_HISTORY_WINDOW
            )
            return mine.runs
        page = await self.github.list_runs(
            repository, branch=branch, status="completed", per_page=HISTORY_WINDOW
        )
        return page.runs


async def run_history(
    github: GitHubClient, run: RunToInspect, pages: BranchPages | None = None
) -> RunHistory | None:
    """What the analyzer needs to call a failure flaky or inherited, in at most two requests.

    Earlier attempts come from the run's jobs of every attempt (only fetched for a re-run);
    other runs of the same workflow on the same commit, the parent commit's latest run and
    the workflow's last green run on the branch come from one page of the branch's completed
    runs (shared by every failure received before it was requested, see :class:`BranchPages`).
    The REST API has no "parent commit" without the commits endpoint, so the parent is the newest older run
    of the same workflow on the branch with another head commit: on a branch of pushes,
    that is the parent. The last green run spares the analyzer its own search for a
    baseline. Any failure here is logged and the detection goes on without history.
    """
    pages = pages or BranchPages(github)
    try:
        passed, failed = _earlier_attempts(await _all_jobs(github, run), run.run_attempt)
        parent: str | None = None
        green: WorkflowRun | None = None
        if run.branch:
            runs = await pages.newest(run)
            same_commit, parent, green = _branch_history(runs, run)
            passed += sum(1 for c in same_commit if c == "success")
            failed += sum(1 for c in same_commit if run_failed(c))
    except (GitHubError, ValueError, KeyError) as exc:
        log.warning("run_history_unavailable", repository=run.repository, run_id=run.run_id, error=str(exc))
        return None
    return RunHistory(
        earlier_attempts_passed=passed,
        earlier_attempts_failed=failed,
        parent_commit_conclusion=parent,
        branch_runs_read=bool(run.branch),
        last_green_run_id=green.id if green else None,
        last_green_run_attempt=green.run_attempt if green else None,
    )


async def _all_jobs(github: GitHubClient, run: RunToInspect) -> list[Job]:
    if run.run_attempt <= 1:
        return []
    return await github.list_jobs(run.repository, run.run_id, latest=False)


def _earlier_attempts(jobs: list[Job], attempt: int) -> tuple[int, int]:
    """(passed, failed) among attempts before ``attempt``, judged by the jobs each one ran."""
    by_attempt: dict[int, list[str | None]] = {}
    for job in jobs:
        if job.run_attempt < attempt:
            by_attempt.setdefault(job.run_attempt, []).append(job.conclusion)
    failed = sum(1 for conclusions in by_attempt.values() if any(run_failed(c) for c in conclusions))
    passed = sum(1 for conclusions in by_attempt.values() if all(c in PASSED for c in conclusions))
    return passed, failed


def _branch_history(
    runs: tuple[WorkflowRun, ...], run: RunToInspect
) -> tuple[list[str | None], str | None, WorkflowRun | None]:
    """Conclusions of other runs of this workflow on the same commit, the parent's conclusion,
    and the newest successful run of this workflow (on any commit of the branch)."""
    workflow = run.workflow_path or run.workflow_name
    mine = [r for r in runs if (r.path or r.name) == workflow and r.id != run.run_id]
    same_commit = [r.conclusion for r in mine if run.head_sha and r.head_sha == run.head_sha]
    older = [r for r in mine if r.head_sha != run.head_sha and r.id < run.run_id]
    parent = max(older, key=lambda r: r.id).conclusion if older else None
    greens = (r for r in mine if r.conclusion == "success" and r.id >= 1 and r.run_attempt >= 1)
    green = max(greens, key=lambda r: r.id, default=None)
    return same_commit, parent, green


def failure_detected(
    run: RunToInspect,
    jobs: list[FailedJob],
    *,
    detected_at: datetime | None = None,
    history: RunHistory | None = None,
) -> FailureDetected:
    failure_id = derive_failure_id(run.repository, run.run_id, run.run_attempt)
    seen = run.updated_at or run.run_started_at or detected_at or utc_now()
    return FailureDetected(
        event_id=derive_event_id(failure_id, "FailureDetected", seen),
        failure_id=failure_id,
        actor="monitor",
        payload=FailureDetectedPayload(
            **run.run_facts(), detected_at=detected_at or utc_now(), failed_jobs=tuple(jobs), history=history
        ),
    )
