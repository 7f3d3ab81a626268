"""Approval records and their only legal transitions: pending -> granted | rejected | expired."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from medic.events import FAILURE_NAMESPACE, ActionKind, ProposedAction


class ApprovalStatus(StrEnum):
    PENDING = "pending"
    GRANTED = "granted"
    REJECTED = "rejected"
    EXPIRED = "expired"


class ApprovalConflict(Exception):
    """The approval is not pending any more (decided, expired) or was decided concurrently."""


class ApprovalRecord(BaseModel):
    model_config = ConfigDict(frozen=True)

    approval_id: str
    failure_id: str
    repository: str
    run_id: int
    action: ProposedAction
    reasons: tuple[str, ...] = ()
    requested_at: datetime
    expires_at: datetime
    status: ApprovalStatus = ApprovalStatus.PENDING
    decided_by: str | None = None
    decided_at: datetime | None = None
    note: str = ""
    approvals_needed: int = 1
    """2 for critical risk: two distinct people must approve (four-eyes)."""
    approvals: tuple[str, ...] = ()
    """Who has approved so far (four-eyes: the first of two)."""
    published: bool = False
    """Whether the decision event is on the bus; a crash in between is reconciled at start."""

    def decide(
        self,
        status: ApprovalStatus,
        *,
        by: str,
        at: datetime,
        note: str = "",
        chosen_action: ActionKind | None = None,
    ) -> ApprovalRecord:
        """The decision; for an unexplained failure (action ``none``) the approver picks the action.

        A person may only fill in a missing action, from the typed set, never swap the one the
        gate was asked about: approving means "do exactly this".
        """
        if self.status is not ApprovalStatus.PENDING:
            raise ApprovalConflict(f"approval {self.approval_id} is already {self.status.value}")
        if status is not ApprovalStatus.EXPIRED and at >= self.expires_at:
            raise ApprovalConflict(f"approval {self.approval_id} expired at {self.expires_at.isoformat()}")
        action = self.action
        if chosen_action is not None and status is ApprovalStatus.GRANTED:
            if self.action.kind is not ActionKind.NONE and chosen_action is not self.action.kind:
                raise ApprovalConflict(
                    f"approval {self.approval_id} is for {self.action.kind.value}; it cannot be changed"
                )
            if chosen_action is ActionKind.CLEAR_CACHE and not self.action.cache_key:
                raise ApprovalConflict("clear_cache needs a cache key, which this failure does not name")
            action = self.action.model_copy(update={"kind": chosen_action})
        update = {"status": status, "decided_by": by, "decided_at": at, "note": note, "action": action}
        return self.model_copy(update=update)

    def endorse(self, by: str, *, at: datetime) -> ApprovalRecord:
        """Four-eyes: record ``by`` as one of the approvers, before the decision is complete."""
        if self.status is not ApprovalStatus.PENDING:
            raise ApprovalConflict(f"approval {self.approval_id} is already {self.status.value}")
        if at >= self.expires_at:
            raise ApprovalConflict(f"approval {self.approval_id} expired at {self.expires_at.isoformat()}")
        if by in self.approvals:
            raise ApprovalConflict(f"{by} has already approved; a second, different approver is needed")
        return self.model_copy(update={"approvals": (*self.approvals, by)})

    @property
    def complete_with_one_more(self) -> bool:
        return len(self.approvals) + 1 >= self.approvals_needed


class Via(StrEnum):
    SLACK = "slack"
    WEB = "web"
    CLI = "cli"


class ApprovalForbidden(Exception):
    """The person may not decide this approval (not among its approvers); nothing was decided."""


def approval_id_for(gate_event_id: str) -> str:
    return str(uuid.uuid5(FAILURE_NAMESPACE, f"approval/{gate_event_id}"))


class DecisionRequest(BaseModel):
    """Body of approve/reject over HTTP. ``approver`` counts only where no identity is verified
    (open mode); it is shown, never interpreted, and never holds control characters."""

    model_config = ConfigDict(extra="forbid")

    approver: str | None = Field(default=None, min_length=1, max_length=100, pattern=r"^[^\x00-\x1f\x7f]+$")
    comment: str = Field(default="", max_length=2000)
    action: ActionKind | None = None
    """Only when the failure came with no action (unexplained): what the approver wants done."""
