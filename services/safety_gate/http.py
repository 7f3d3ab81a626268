"""The policy over HTTP: read it, flip the kill switch and dry-run, reset a breaker, lift a hold.

Changing the policy needs the ``approve`` scope once an identity source is set (the host's
access gate checks it, :mod:`medic.access`), and the change is recorded as the verified
caller (``token:alice``), not the body's ``by``. Each change answers with its PolicyChanged.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field

from medic.access import Identity
from medic.bus import Bus
from medic.config import Settings
from medic.events import PolicyChanged, utc_now
from medic.services.safety_gate.gate import Gate

_NAME = re.compile(r"[A-Za-z0-9_.-]{1,100}")


class SwitchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    on: bool
    by: str = Field(min_length=1, max_length=100)
    reason: str = Field(default="", max_length=1000)


class PolicyCommand(BaseModel):
    model_config = ConfigDict(extra="forbid")

    by: str = Field(min_length=1, max_length=100)
    reason: str = Field(default="", max_length=1000)


def policy_router(current: Callable[[], Settings], gate: Callable[[], Gate], bus: Bus) -> APIRouter:
    """``current`` is read per request: a reloaded token or switch applies at once."""
    router = APIRouter(prefix="/api/policy", tags=["policy"])

    def authorised(request: Request, authorization: Annotated[str | None, Header()] = None) -> None:
        if isinstance(getattr(request.state, "identity", None), Identity):
            return  # the access gate verified the caller and the approve scope
        token = current().api_token
        if token is None:
            return
        expected = f"Bearer {token.get_secret_value()}".encode()
        if not hmac.compare_digest((authorization or "").encode(), expected):
            raise HTTPException(401, "a valid bearer token is needed to change the policy")

    async def recorded(change: PolicyChanged) -> dict[str, Any]:
        await bus.publish(change)
        return change.model_dump(mode="json")

    @router.get("")
    async def read_policy() -> dict[str, Any]:
        store, settings = gate().store, current()
        switches = await store.switches()
        now = utc_now()
        return {
            "kill_switch": settings.kill_switch or switches.kill_switch,
            "dry_run": settings.dry_run or switches.dry_run,
            "configured": {"kill_switch": settings.kill_switch, "dry_run": settings.dry_run},
            "switches": switches.model_dump(mode="json"),
            "open_breakers": [
                b.model_dump(mode="json", exclude={"counted"}) for b in await store.open_breakers()
            ],
            "holds": [
                i.model_dump(mode="json", exclude={"sightings"})
                for i in await store.incidents()
                if i.holding(now)
            ],
        }

    def who(request: Request, typed: str) -> str:
        identity = getattr(request.state, "identity", None)
        return identity.principal if isinstance(identity, Identity) else typed

    async def switch(name: str, body: SwitchRequest, request: Request) -> dict[str, Any]:
        by = who(request, body.by)
        return await recorded(await gate().set_switch(name, body.on, by=by, reason=body.reason, at=utc_now()))

    @router.post("/kill-switch", dependencies=[Depends(authorised)])
    async def kill_switch(body: SwitchRequest, request: Request) -> dict[str, Any]:
        return await switch("kill_switch", body, request)

    @router.post("/dry-run", dependencies=[Depends(authorised)])
    async def dry_run(body: SwitchRequest, request: Request) -> dict[str, Any]:
        return await switch("dry_run", body, request)

    @router.post("/breakers/{owner}/{name}/reset", dependencies=[Depends(authorised)])
    async def reset_breaker(owner: str, name: str, body: PolicyCommand, request: Request) -> dict[str, Any]:
        if not (_NAME.fullmatch(owner) and _NAME.fullmatch(name)):
            raise HTTPException(400, "a repository is owner/name")
        by = who(request, body.by)
        change = await gate().reset_breaker(f"{owner}/{name}", by=by, reason=body.reason, at=utc_now())
        if change is None:
            raise HTTPException(404, f"no open circuit breaker for {owner}/{name}")
        return await recorded(change)

    @router.post("/holds/{fingerprint}/lift", dependencies=[Depends(authorised)])
    async def lift_hold(fingerprint: str, body: PolicyCommand, request: Request) -> dict[str, Any]:
        if not _NAME.fullmatch(fingerprint):
            raise HTTPException(400, "not a fingerprint")
        by = who(request, body.by)
        change = await gate().lift_hold(fingerprint, by=by, reason=body.reason, at=utc_now())
        if change is None:
            raise HTTPException(404, f"no incident hold for {fingerprint}")
        return await recorded(change)

    return router
