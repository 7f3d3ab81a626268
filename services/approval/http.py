"""Approve and reject over HTTP (``/api/approvals``); decisions go through the desk like any other way."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Depends, Header, HTTPException

from medic.config import Settings
from medic.services.approval.desk import ApprovalDesk
from medic.services.approval.records import (
    ApprovalConflict,
    ApprovalForbidden,
    ApprovalRecord,
    ApprovalStatus,
    Approver,
    DecisionRequest,
    Via,
)


def approval_router(*, desk: Callable[[], ApprovalDesk], settings: Settings) -> APIRouter:
    """``desk`` is looked up per request: routes exist before the service has started."""
    router = APIRouter(prefix="/api/approvals", tags=["approvals"])

    def authorised(authorization: Annotated[str | None, Header()] = None) -> None:
        token = settings.api_token
        if token is None:
            return
        expected = f"Bearer {token.get_secret_value()}".encode()
        # constant-time: the comparison's duration must not tell how much of a guess was right
        if not hmac.compare_digest((authorization or "").encode(), expected):
            raise HTTPException(401, "approve/reject needs Authorization: Bearer <MEDIC_API_TOKEN>")

    @router.get("")
    async def list_approvals(status: ApprovalStatus | None = None) -> list[ApprovalRecord]:
        return await desk().pending(status)

    async def act(
        approval_id: str, status: ApprovalStatus, body: DecisionRequest, via: str | None
    ) -> ApprovalRecord:
        if body.approver.strip().lower().startswith("slack:"):
            raise HTTPException(400, "a Slack identity can only act from Slack (signed by Slack)")
        who = Approver(Via.CLI if via == "cli" else Via.WEB, body.approver)
        try:
            return await desk().decide(
                approval_id, status, by=who, note=body.comment, chosen_action=body.action
            )
        except KeyError:
            raise HTTPException(404, f"no approval {approval_id!r}") from None
        except ApprovalForbidden as exc:
            raise HTTPException(403, str(exc)) from None
        except ApprovalConflict as exc:
            raise HTTPException(409, str(exc)) from None

    @router.post("/{approval_id}/approve", dependencies=[Depends(authorised)])
    async def approve(
        approval_id: str, body: DecisionRequest, x_medic_via: Annotated[str | None, Header()] = None
    ) -> ApprovalRecord:
        return await act(approval_id, ApprovalStatus.GRANTED, body, x_medic_via)

    @router.post("/{approval_id}/reject", dependencies=[Depends(authorised)])
    async def reject(
        approval_id: str, body: DecisionRequest, x_medic_via: Annotated[str | None, Header()] = None
    ) -> ApprovalRecord:
        return await act(approval_id, ApprovalStatus.REJECTED, body, x_medic_via)

    return router
