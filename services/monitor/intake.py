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

    @property
    def dedup_key(self) -> str:
        """Same run attempt, same key: webhook and poll of one attempt are recorded once."""
        return f"{self.repository.lower()}#{self.run_id}#{self.run_attempt}"


def decode_run(data: bytes) -> RunToInspect:
    try:
        return RunToInspect.model_validate_json(data)
    except ValidationError as exc:
        raise DecodeError(f"not a RunToInspect: {exc.error_count()} errors: {exc.errors()[:3]}") from exc
