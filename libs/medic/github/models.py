"""What ci-medic needs to know about GitHub runs, jobs and logs: small, frozen, library-free.

Kept apart from githubkit's generated models so services do not depend on the SDK's shapes,
and so a change in GitHub's schema surfaces here, in one mapping, not across services.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class WorkflowRun(_Frozen):
    id: int
    run_attempt: int
    name: str
    path: str
    event: str
    status: str | None
    conclusion: str | None
    head_branch: str
    head_sha: str
    head_commit_message: str
    """Untrusted text: anyone who can push chooses it."""
    actor_login: str
    pull_request_numbers: tuple[int, ...]
    html_url: str
    run_started_at: datetime | None
    created_at: datetime
    updated_at: datetime
    repository: str
    """``owner/name``."""
    workflow_id: int | None = None
    """The workflow this run is of (its own runs: ``list_workflow_runs``)."""


class Job(_Frozen):
    id: int
    name: str
    status: str
    conclusion: str | None
    failed_steps: tuple[str, ...]
    run_attempt: int
    html_url: str | None = None


class JobLog(_Frozen):
    text: str
    """A bounded tail of the log, decoded with replacement characters; untrusted text."""
    total_bytes: int = 0
    dropped_bytes: int = 0
    unavailable_reason: str | None = None

    @property
    def truncated(self) -> bool:
        return self.dropped_bytes > 0


class RunsPage(_Frozen):
    runs: tuple[WorkflowRun, ...]
    etag: str | None
    not_modified: bool = False
    """True when GitHub answered 304 to ``If-None-Match``: nothing changed, and it cost no budget."""
