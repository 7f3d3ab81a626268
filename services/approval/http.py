"""Approve and reject over HTTP (``/api/approvals``); decisions go through the desk like any other way.

Who decided is the identity the access gate verified (:mod:`medic.access`), recorded as
``token:alice`` or ``proxy:alice@example.com``; the body's ``approver`` is only used when no
identity source is configured, and then recorded as ``unverified:<name>``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Request

from medic.access import Identity, Scope, unverified
from medic.config import Settings
from medic.services.approval.desk import ApprovalDesk
from medic.services.approval.records import (
    ApprovalConflict,
    ApprovalForbidden,
    ApprovalRecord,
    ApprovalStatus,
    DecisionRequest,
    Via,
)

ApprovalId = Annotated[uuid.UUID, Path(description="the approval's id (a UUID)")]


def approval_router(*, desk: Callable[[], ApprovalDesk], settings: Settings) -> APIRouter:
    """``desk`` is looked up per request: routes exist before the service has started."""
    router = APIRouter(prefix="/api/approvals", tags=["approvals"])

    enforced = settings.access_policy().enforced

    def decider(request: Request, body: DecisionRequest) -> Identity:
        identity = getattr(request.state, "identity", None)
        if isinstance(identity, Identity):
            if not identity.may(Scope.APPROVE):
                raise HTTPException(403, f"{identity.principal} may not approve or reject")
            return identity
        if enforced:  # the gate always sets one; without it, never fall back to a typed name
            raise HTTPException(401, "approve/reject needs a verified identity")
        if body.approver is None:
            raise HTTPException(422, "approver: required when no identity source is configured")
        try:
            return unverified(body.approver)
        except ValueError as exc:
            raise HTTPException(422, f"approver: {exc}") from None

    @router.get("")
    async def list_approvals(status: ApprovalStatus | None = None) -> list[ApprovalRecord]:
        return await desk().pending(status)

    async def act(
        approval_id: uuid.UUID, status: ApprovalStatus, body: DecisionRequest, request: Request
    ) -> ApprovalRecord:
        who = decider(request, body)
        via = Via.CLI if request.headers.get("x-medic-via") == "cli" else Via.WEB
        try:
            return await desk().decide(
                str(approval_id), status, by=who, via=via, note=body.comment, chosen_action=body.action
            )
        except KeyError:
            raise HTTPException(404, f"no approval {str(approval_id)!r}") from None
        except ApprovalForbidden as exc:
            raise HTTPException(403, str(exc)) from None
        except ApprovalConflict as exc:
            raise HTTPException(409, str(exc)) from None

    @router.post("/{approval_id}/approve")
    async def approve(approval_id: ApprovalId, body: DecisionRequest, request: Request) -> ApprovalRecord:
        return await act(approval_id, ApprovalStatus.GRANTED, body, request)

    @router.post("/{approval_id}/reject")
    async def reject(approval_id: ApprovalId, body: DecisionRequest, request: Request) -> ApprovalRecord:
        return await act(approval_id, ApprovalStatus.REJECTED, body, request)

    return router
