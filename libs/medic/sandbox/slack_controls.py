"""The sandbox Slack's own endpoints (``/_sandbox/...``): read history, switch modes, play people.

Not part of Slack's API: this is how tests and a person at ``medic run`` look into the channels
and press buttons. A click is refused (404) when the message or button is not there any more,
as a real person could not press a button that was replaced.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, ConfigDict, Field

from medic.sandbox.slack_interactions import block_actions, find_button, view_submission

if TYPE_CHECKING:
    from medic.sandbox.slack import SandboxSlack


class Click(BaseModel):
    model_config = ConfigDict(extra="forbid")

    channel: str = Field(min_length=1)
    ts: str = Field(min_length=1)
    action_id: str = Field(min_length=1)
    user: str = Field(min_length=1)
    age_seconds: float = 0.0
    """Sign with a timestamp this old (a replayed request)."""
    forge: bool = False
    """Sign with the wrong secret (a forged request)."""


class Submit(BaseModel):
    model_config = ConfigDict(extra="forbid")

    view_id: str = Field(min_length=1)
    user: str | None = None
    values: dict[str, dict[str, str]] = Field(default_factory=dict)


class NewUser(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=r"^[UW][A-Z0-9]{2,}$")
    name: str = Field(min_length=1, max_length=80)
    real_name: str = ""
    deleted: bool = False


class NewGroup(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=r"^S[A-Z0-9]{2,}$")
    users: list[str]


def controls_router(sandbox: SandboxSlack) -> APIRouter:
    from medic.sandbox.slack import deliver

    router = APIRouter(prefix="/_sandbox")

    @router.post("/reset")
    async def reset() -> dict[str, bool]:
        sandbox.reset()
        return {"ok": True}

    @router.post("/modes")
    async def set_modes(changes: dict[str, Any]) -> dict[str, Any]:
        try:
            sandbox.modes.update(changes)
        except (ValueError, TypeError) as exc:
            raise HTTPException(400, str(exc)) from None
        return dict(sandbox.modes.__dict__)

    @router.get("/requests")
    async def requests() -> list[dict[str, Any]]:
        return sandbox.requests

    @router.get("/channels")
    async def channels() -> list[dict[str, Any]]:
        return [
            {"id": c.id, "name": c.name, "messages": len(c.messages)}
            for c in sandbox.workspace.channels.values()
        ]

    @router.get("/history")
    async def history(channel: str) -> list[dict[str, Any]]:
        """Top-level messages of a channel, oldest first, each with its replies."""
        found = sandbox.workspace.channel(channel)
        if found is None:
            return []
        parents = [m for m in found.messages if m.thread_ts is None]
        return [
            {
                **m.as_json(),
                "history": m.history,
                "replies": [r.as_json() for r in found.messages if r.thread_ts == m.ts],
            }
            for m in parents
        ]

    @router.get("/ephemeral")
    async def ephemeral() -> list[dict[str, Any]]:
        return sandbox.workspace.ephemeral

    @router.get("/views")
    async def views() -> list[dict[str, Any]]:
        return list(sandbox.workspace.views.values())

    @router.post("/users")
    async def add_user(user: NewUser) -> dict[str, bool]:
        sandbox.workspace.add_user(user.id, user.name, user.real_name, deleted=user.deleted)
        return {"ok": True}

    @router.post("/usergroups")
    async def add_group(group: NewGroup) -> dict[str, bool]:
        sandbox.workspace.usergroups[group.id] = list(group.users)
        return {"ok": True}

    @router.post("/click")
    async def click(request: Click) -> dict[str, Any]:
        ws = sandbox.workspace
        channel = ws.channel(request.channel)
        message = ws.find(request.channel, request.ts) if channel else None
        if channel is None or message is None:
            raise HTTPException(404, "no such message")
        found = find_button(message, request.action_id)
        if found is None:
            raise HTTPException(404, f"the message has no button {request.action_id!r} (any more)")
        block_id, button = found
        trigger_id = ws.next_id("T") + ".sandbox"
        ws.triggers[trigger_id] = {"user": request.user, "channel": channel.id, "ts": message.ts}
        payload = block_actions(
            ws,
            message,
            channel_name=channel.name,
            user_id=request.user,
            block_id=block_id,
            button=button,
            trigger_id=trigger_id,
            base_url="http://sandbox.slack.invalid",
        )
        answer = await deliver(sandbox, payload, age_seconds=request.age_seconds, forge=request.forge)
        record = {"payload": payload, "status": answer.status_code, "body": answer.text}
        sandbox.clicks.append(record)
        return {"status": answer.status_code, "body": answer.text, "trigger_id": trigger_id}

    @router.post("/submit")
    async def submit(request: Submit) -> dict[str, Any]:
        view = sandbox.workspace.views.get(request.view_id)
        if view is None:
            raise HTTPException(404, "no such open view")
        user = request.user or str(view.get("opened_for", ""))
        shown = {k: v for k, v in view.items() if k != "opened_for"}
        payload = view_submission(sandbox.workspace, shown, user_id=user, values=request.values)
        answer = await deliver(sandbox, payload)
        if answer.status_code == 200 and not answer.content.strip():
            sandbox.workspace.views.pop(request.view_id, None)  # an empty ack closes the modal
        sandbox.clicks.append({"payload": payload, "status": answer.status_code, "body": answer.text})
        return {"status": answer.status_code, "body": answer.text}

    return router
