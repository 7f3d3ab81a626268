"""The monitor's intake: a run attempt that failed, recorded before any slow work.

The webhook handler (and later the poller) only verifies, records a :class:`RunToInspect`
on the intake work stream and answers; fetching jobs and logs happens from that stream,
so a slow GitHub never makes a webhook delivery time out and nothing is lost on a crash.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, Self

from pydantic import ValidationError, model_validator

from medic.boundary import MAX_ID, MAX_RUN_ATTEMPT, bounded_text
from medic.bus import DecodeError
from medic.events import WorkflowRunFacts, derive_failure_id
from medic.github.models import WorkflowRun
from medic.redact import redact

COMMIT_MESSAGE_BYTES = 64 * 1024
"""A commit message is kept up to here (git allows any size; a 1 MB one would not fit an event)."""
NAME_BYTES = 1024
URL_BYTES = 2048
MAX_PULL_REQUESTS = 100
TEXT_LIMITS = {
    "repository": NAME_BYTES,
    "workflow_name": NAME_BYTES,
    "workflow_path": NAME_BYTES,
    "event": NAME_BYTES,
    "branch": NAME_BYTES,
    "head_sha": NAME_BYTES,
    "commit_message": COMMIT_MESSAGE_BYTES,
    "actor": NAME_BYTES,
    "html_url": URL_BYTES,
    "conclusion": NAME_BYTES,
    "delivery_id": NAME_BYTES,
}


class RunToInspect(WorkflowRunFacts):
    """A failed run attempt on the intake stream: the run's facts, and how it was seen.

    This is the one door webhooks and polls both come through, so GitHub's values are
    range-checked, cleaned and bounded here (see :mod:`medic.boundary`): an id past
    ``2**53 - 1`` or an attempt outside 1..1000 is refused, text is cut with a marker.
    """

    updated_at: datetime | None = None
    delivery_id: str | None = None
    partial: bool = False
    """Only the run's id and attempt are known (a ``workflow_job`` delivery): fetch the rest."""
    workflow_id: int | None = None
    """GitHub's id of the run's workflow: its own runs are one request (None: not told)."""
    received_at: datetime | None = None
    """When the webhook or poll was recorded (stamped by the recorder, not the handler): a page of
    the branch's runs requested since then is as fresh as one fetched now. None before it existed."""

    @model_validator(mode="before")
    @classmethod
    def _bounded(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        for name, limit in TEXT_LIMITS.items():
            if isinstance(data.get(name), str):
                data[name] = bounded_text(data[name], limit)
        if isinstance(data.get("commit_message"), str):  # people paste tokens into messages too
            data["commit_message"] = redact(data["commit_message"])
        numbers = data.get("pull_requests")
        if isinstance(numbers, list | tuple):
            data["pull_requests"] = tuple(numbers[:MAX_PULL_REQUESTS])
        return data

    @model_validator(mode="after")
    def _in_range(self) -> Self:
        workflow = () if self.workflow_id is None else (("workflow_id", self.workflow_id),)
        numbers = (("run_id", self.run_id), *workflow, *(("pull request", n) for n in self.pull_requests))
        for what, number in numbers:
            if not 1 <= number <= MAX_ID:
                raise ValueError(f"{what} must be between 1 and {MAX_ID}")
        if not 1 <= self.run_attempt <= MAX_RUN_ATTEMPT:
            raise ValueError(f"run_attempt must be between 1 and {MAX_RUN_ATTEMPT}")
        return self

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
        workflow_id=run.workflow_id,
    )
