"""The monitor's intake: a run attempt that failed, recorded before any slow work.

The webhook handler (and later the poller) only verifies, records a :class:`RunToInspect`
on the intake work stream and answers; fetching jobs and logs happens from that stream,
so a slow GitHub never makes a webhook delivery time out and nothing is lost on a crash.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from medic.bus import DecodeError
from medic.events import derive_failure_id
from medic.github.models import WorkflowRun


class RunToInspect(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    repository: str
    run_id: int
    run_attempt: int
    workflow_name: str
    workflow_path: str = ""
    event: str = ""
    branch: str = ""
    head_sha: str = ""
    commit_message: str = ""
    actor: str = ""
    pull_requests: tuple[int, ...] = ()
    html_url: str = ""
    conclusion: str
    run_started_at: datetime | None = None
    updated_at: datetime | None = None
    source: Literal["webhook", "poll"] = "webhook"
    delivery_id: str | None = None
    partial: bool = False
    """Only the run's id and attempt are known (a ``workflow_job`` delivery): fetch the rest."""

    @property
    def failure_id(self) -> str:
        """Same run attempt, same id: webhook and poll of one attempt are recorded once."""
        return derive_failure_id(self.repository, self.run_id, self.run_attempt)

    @property
    def label(self) -> str:
        """For people: ``owner/name#run#attempt``."""
        return f"{self.repository}#{self.run_id}#{self.run_attempt}"


def decode_run(data: bytes) -> RunToInspect:
    try:
        return RunToInspect.model_validate_json(data)
    except ValidationError as exc:
        raise DecodeError(f"not a RunToInspect: {exc.error_count()} errors: {exc.errors()[:3]}") from exc


def from_workflow_run(
    run: WorkflowRun, *, source: Literal["webhook", "poll"], repository: str | None = None
) -> RunToInspect:
    """The run as GitHub's REST API shows it (its latest attempt)."""
    return RunToInspect(
        repository=repository or run.repository,
        run_id=run.id,
        run_attempt=run.run_attempt,
        workflow_name=run.name or run.path or "workflow",
        workflow_path=run.path,
        event=run.event,
        branch=run.head_branch,
        head_sha=run.head_sha,
        commit_message=run.head_commit_message,
        actor=run.actor_login,
        pull_requests=run.pull_request_numbers,
        html_url=run.html_url,
        conclusion=run.conclusion or "failure",
        run_started_at=run.run_started_at,
        updated_at=run.updated_at,
        source=source,
    )
