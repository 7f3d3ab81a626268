"""The policy over HTTP: read it, flip the kill switch and dry-run, reset a breaker, lift a hold.

Changing the policy needs ``Authorization: Bearer $MEDIC_API_TOKEN`` when a token is set,
as approving does. Each change answers with the PolicyChanged event it recorded.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, HTTPException
from pydantic import BaseModel, ConfigDict, Field

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

    def authorised(authorization: Annotated[str | None, Header()] = None) -> None:
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

    async def switch(name: str, body: SwitchRequest) -> dict[str, Any]:
        return await recorded(
            await gate().set_switch(name, body.on, by=body.by, reason=body.reason, at=utc_now())
        )

    @router.post("/kill-switch", dependencies=[Depends(authorised)])
    async def kill_switch(body: SwitchRequest) -> dict[str, Any]:
        return await switch("kill_switch", body)

    @router.post("/dry-run", dependencies=[Depends(authorised)])
    async def dry_run(body: SwitchRequest) -> dict[str, Any]:
        return await switch("dry_run", body)

    @router.post("/breakers/{owner}/{name}/reset", dependencies=[Depends(authorised)])
    async def reset_breaker(owner: str, name: str, body: PolicyCommand) -> dict[str, Any]:
        if not (_NAME.fullmatch(owner) and _NAME.fullmatch(name)):
            raise HTTPException(400, "a repository is owner/name")
        change = await gate().reset_breaker(f"{owner}/{name}", by=body.by, reason=body.reason, at=utc_now())
        if change is None:
            raise HTTPException(404, f"no open circuit breaker for {owner}/{name}")
        return await recorded(change)

    @router.post("/holds/{fingerprint}/lift", dependencies=[Depends(authorised)])
    async def lift_hold(fingerprint: str, body: PolicyCommand) -> dict[str, Any]:
        if not _NAME.fullmatch(fingerprint):
            raise HTTPException(400, "not a fingerprint")
        change = await gate().lift_hold(fingerprint, by=body.by, reason=body.reason, at=utc_now())
        if change is None:
            raise HTTPException(404, f"no incident hold for {fingerprint}")
        return await recorded(change)

    return router
