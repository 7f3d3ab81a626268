"""Turning a failed run attempt into a FailureDetected with its failed jobs and their logs.

A failure is never dropped for want of a log: when GitHub cannot give one (gone past
retention, no permission, rate limit) the job is still reported, with the reason.
"""

from __future__ import annotations

from datetime import datetime

from medic.events import (
    FailedJob,
    FailureDetected,
    FailureDetectedPayload,
    derive_event_id,
    derive_failure_id,
    utc_now,
)
from medic.github.client import GitHubClient
from medic.github.errors import GitHubError
from medic.redact import redact
from medic.services.monitor.intake import RunToInspect

INLINE_EXCERPT_BYTES = 256 * 1024
"""Per job; keeps a FailureDetected well under the NATS default max payload (1 MiB)."""


async def failed_jobs(github: GitHubClient, run: RunToInspect, *, log_tail_bytes: int) -> list[FailedJob]:
    try:
        jobs = await github.list_failed_jobs(run.repository, run.run_id)
    except GitHubError as exc:
        return [FailedJob(job_id=0, name="(jobs unavailable)", log_unavailable_reason=f"jobs: {exc}")]
    result: list[FailedJob] = []
    for job in jobs:
        try:
            log = await github.fetch_job_log(run.repository, job.id, max_bytes=log_tail_bytes)
            text, reason, truncated = log.text, log.unavailable_reason, log.truncated
        except GitHubError as exc:
            text, reason, truncated = "", f"log: {exc}", False
        text = redact(text)
        if len(text.encode()) > INLINE_EXCERPT_BYTES:
            text = text.encode()[-INLINE_EXCERPT_BYTES:].decode(errors="ignore")
            truncated = True
        result.append(
            FailedJob(
                job_id=job.id,
                name=job.name,
                failed_steps=tuple(job.failed_steps),
                log_excerpt=text,
                log_truncated=truncated,
                log_unavailable_reason=reason,
            )
        )
    return result


def failure_detected(
    run: RunToInspect, jobs: list[FailedJob], *, detected_at: datetime | None = None
) -> FailureDetected:
    failure_id = derive_failure_id(run.repository, run.run_id, run.run_attempt)
    seen = run.updated_at or run.run_started_at or detected_at or utc_now()
    return FailureDetected(
        event_id=derive_event_id(failure_id, "FailureDetected", seen),
        failure_id=failure_id,
        actor="monitor",
        payload=FailureDetectedPayload(
            repository=run.repository,
            run_id=run.run_id,
            run_attempt=run.run_attempt,
            workflow_name=run.workflow_name,
            workflow_path=run.workflow_path,
            event=run.event,
            branch=run.branch,
            head_sha=run.head_sha,
            commit_message=run.commit_message,
            actor=run.actor,
            pull_requests=run.pull_requests,
            html_url=run.html_url,
            conclusion=run.conclusion,
            run_started_at=run.run_started_at,
            detected_at=detected_at or utc_now(),
            source=run.source,
            failed_jobs=tuple(jobs),
        ),
    )
