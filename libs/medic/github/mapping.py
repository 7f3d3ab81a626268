"""GitHub JSON onto our own models: the one place a change in GitHub's schema surfaces."""

from __future__ import annotations

from typing import Any

import httpx

from medic.conclusions import job_failed
from medic.github.models import Job, WorkflowRun


def error_message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except (ValueError, httpx.ResponseNotRead):
        return response.reason_phrase
    return (
        str(body.get("message", response.reason_phrase)) if isinstance(body, dict) else response.reason_phrase
    )


def run_from_json(run: dict[str, Any]) -> WorkflowRun:
    head_commit = run.get("head_commit") or {}
    return WorkflowRun(
        id=run["id"],
        run_attempt=run.get("run_attempt") or 1,
        name=run.get("name") or "",
        path=run.get("path") or "",
        event=run.get("event") or "",
        status=run.get("status"),
        conclusion=run.get("conclusion"),
        head_branch=run.get("head_branch") or "",
        head_sha=run.get("head_sha") or "",
        head_commit_message=head_commit.get("message") or "",
        actor_login=(run.get("actor") or {}).get("login", ""),
        pull_request_numbers=tuple(pr["number"] for pr in run.get("pull_requests") or []),
        html_url=run.get("html_url") or "",
        run_started_at=run.get("run_started_at"),
        created_at=run["created_at"],
        updated_at=run["updated_at"],
        repository=(run.get("repository") or {}).get("full_name", ""),
        workflow_id=run.get("workflow_id"),
    )


def job_from_json(job: dict[str, Any]) -> Job:
    steps = job.get("steps") or []
    return Job(
        id=job["id"],
        name=job.get("name") or "",
        status=job.get("status") or "",
        conclusion=job.get("conclusion"),
        failed_steps=tuple(step["name"] for step in steps if job_failed(step.get("conclusion"))),
        run_attempt=job.get("run_attempt") or 1,
        html_url=job.get("html_url"),
    )
