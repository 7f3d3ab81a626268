"""Reading GitHub webhook payloads: which deliveries are failures worth inspecting.

Payloads are parsed into small models of just the fields we use; everything in them
(branch names, commit messages) is data from strangers and only ever stored or shown.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from medic.boundary import MAX_ID, MAX_RUN_ATTEMPT
from medic.conclusions import run_failed
from medic.services.monitor.intake import RunToInspect


class _Loose(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class _Login(_Loose):
    login: str = ""


class _Commit(_Loose):
    message: str = ""


Id = Annotated[int, Field(ge=1, le=MAX_ID)]
"""A GitHub id: positive and exact in every consumer (2**63 overflows ``bigint``)."""
Attempt = Annotated[int, Field(ge=1, le=MAX_RUN_ATTEMPT)]


class _PullRequest(_Loose):
    number: Id


class _Repository(_Loose):
    full_name: str = Field(pattern=r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")


class _WorkflowRun(_Loose):
    id: Id
    workflow_id: Id | None = None
    run_attempt: Attempt = 1
    name: str | None = None
    path: str = ""
    event: str = ""
    status: str | None = None
    conclusion: str | None = None
    head_branch: str | None = None
    head_sha: str = ""
    head_commit: _Commit | None = None
    actor: _Login | None = None
    pull_requests: list[_PullRequest] = Field(default_factory=list)
    html_url: str = ""
    run_started_at: datetime | None = None
    updated_at: datetime | None = None


class WorkflowRunEvent(_Loose):
    action: str
    workflow_run: _WorkflowRun
    repository: _Repository


class _WorkflowJob(_Loose):
    id: Id
    run_id: Id
    run_attempt: Attempt = 1
    name: str = ""
    status: str | None = None
    conclusion: str | None = None
    workflow_name: str | None = None
    head_branch: str | None = None
    head_sha: str = ""
    completed_at: datetime | None = None


class WorkflowJobEvent(_Loose):
    action: str
    workflow_job: _WorkflowJob
    repository: _Repository


class WebhookRejected(ValueError):
    """The delivery is malformed; the message says what is missing."""


@dataclass(frozen=True)
class Ignored:
    reason: str


def interpret(event_name: str, payload: object, delivery_id: str | None) -> RunToInspect | Ignored:
    """What a delivery means; :class:`WebhookRejected` when it is malformed, in GitHub's shape or ours."""
    try:
        return _interpret(event_name, payload, delivery_id)
    except ValidationError as exc:  # the run's facts break our own contract (e.g. a bad repository name)
        raise WebhookRejected(f"malformed {event_name} payload: {_problems(exc)}") from None


def _interpret(event_name: str, payload: object, delivery_id: str | None) -> RunToInspect | Ignored:
    if event_name == "ping":
        return Ignored("ping")
    if event_name == "workflow_job":
        return _interpret_job(payload, delivery_id)
    if event_name != "workflow_run":
        return Ignored(f"event {event_name!r} is not watched")
    try:
        parsed = WorkflowRunEvent.model_validate(payload)
    except ValidationError as exc:
        raise WebhookRejected(f"malformed workflow_run payload: {_problems(exc)}") from None
    run = parsed.workflow_run
    if parsed.action != "completed":
        return Ignored(f"action {parsed.action!r}")
    if not run_failed(run.conclusion):
        return Ignored(f"conclusion {run.conclusion!r}")
    return RunToInspect(
        repository=parsed.repository.full_name,
        run_id=run.id,
        run_attempt=run.run_attempt,
        workflow_name=run.name or run.path or "workflow",
        workflow_path=run.path,
        event=run.event,
        branch=run.head_branch or "",
        head_sha=run.head_sha,
        commit_message=run.head_commit.message if run.head_commit else "",
        actor=run.actor.login if run.actor else "",
        pull_requests=tuple(pr.number for pr in run.pull_requests),
        html_url=run.html_url,
        conclusion=run.conclusion or "failure",
        run_started_at=run.run_started_at,
        updated_at=run.updated_at,
        source="webhook",
        delivery_id=delivery_id,
        workflow_id=run.workflow_id,
    )


def _interpret_job(payload: object, delivery_id: str | None) -> RunToInspect | Ignored:
    """A failed job stands for its run attempt, so the failure is seen even if ``workflow_run`` is lost.

    The job's payload lacks most of the run (commit message, actor, pull requests): the
    attempt is recorded ``partial`` and the intake handler fetches the run before reporting.
    Its dedup key is the attempt's, so a job webhook and a run webhook give one failure.
    """
    try:
        parsed = WorkflowJobEvent.model_validate(payload)
    except ValidationError as exc:
        raise WebhookRejected(f"malformed workflow_job payload: {_problems(exc)}") from None
    job = parsed.workflow_job
    if parsed.action != "completed":
        return Ignored(f"action {parsed.action!r}")
    if not run_failed(job.conclusion):
        return Ignored(f"conclusion {job.conclusion!r}")
    return RunToInspect(
        repository=parsed.repository.full_name,
        run_id=job.run_id,
        run_attempt=job.run_attempt,
        workflow_name=job.workflow_name or "workflow",
        branch=job.head_branch or "",
        head_sha=job.head_sha,
        conclusion="failure",
        source="webhook",
        delivery_id=delivery_id,
        partial=True,
    )


def _problems(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:5])
