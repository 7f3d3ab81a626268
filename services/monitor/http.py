"""The monitor's HTTP route: GitHub's webhook deliveries, verified and recorded, never processed here.

Answers: 202 recorded (or duplicate), 200 ignored (an event or repository we do not act on),
401 bad signature, 400 malformed, 413 too large. Fetching jobs and logs happens later, from
the intake stream, so a slow GitHub never makes a delivery time out.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, Request
from fastapi.responses import JSONResponse
from prometheus_client import Counter

from medic.boundary import json_too_deep
from medic.config import Settings
from medic.services.monitor import signature
from medic.services.monitor.allowlist import RepositoryAllowlist
from medic.services.monitor.intake import RunToInspect
from medic.services.monitor.webhooks import Ignored, WebhookRejected, interpret

WEBHOOKS = Counter("medic_webhooks_total", "GitHub webhook deliveries by outcome", ["event", "outcome"])
MAX_WEBHOOK_BYTES = 5 * 1024 * 1024

Record = Callable[[RunToInspect], Awaitable[bool]]
"""Puts a run on the intake stream; False when it was already there (a duplicate delivery)."""
Sent = Callable[[str], Awaitable[None]]
"""Told the repository of every verified delivery (the catch-up poll's list)."""
_REPOSITORY = re.compile(r"[A-Za-z0-9_.-]{1,100}/[A-Za-z0-9_.-]{1,100}")


def webhook_router(
    *, settings: Settings, allowlist: RepositoryAllowlist, record: Record, sent: Sent | None = None
) -> APIRouter:
    router = APIRouter(tags=["monitor"])

    @router.post("/webhooks/github", status_code=202)
    async def github_webhook(
        request: Request,
        x_github_event: Annotated[str | None, Header()] = None,
        x_hub_signature_256: Annotated[str | None, Header()] = None,
        x_github_delivery: Annotated[str | None, Header()] = None,
    ) -> JSONResponse:
        body = await _read_capped(request)
        event_name = x_github_event or ""
        if not signature.verify(body, x_hub_signature_256, settings.webhook_secrets()):
            WEBHOOKS.labels(event_name or "unknown", "bad_signature").inc()
            raise HTTPException(401, "missing or invalid X-Hub-Signature-256")
        if not event_name:
            raise HTTPException(400, "missing X-GitHub-Event header")
        if json_too_deep(body):
            WEBHOOKS.labels(event_name, "malformed").inc()
            raise HTTPException(400, "body nests deeper than any GitHub payload")
        try:
            payload = json.loads(body)
        except (ValueError, RecursionError) as exc:
            WEBHOOKS.labels(event_name, "malformed").inc()
            raise HTTPException(400, f"body is not JSON: {exc}") from None
        if sent is not None and (repository := _sender(payload)) is not None:
            await sent(repository)
        try:
            outcome = interpret(event_name, payload, x_github_delivery)
        except WebhookRejected as exc:
            WEBHOOKS.labels(event_name, "malformed").inc()
            raise HTTPException(400, str(exc)) from None
        if isinstance(outcome, Ignored):
            WEBHOOKS.labels(event_name, "ignored").inc()
            return JSONResponse({"status": "ignored", "reason": outcome.reason}, status_code=200)
        if not allowlist.allows(outcome.repository):
            WEBHOOKS.labels(event_name, "not_allowed").inc()
            reason = "repository not in allowed_repositories"
            return JSONResponse({"status": "ignored", "reason": reason}, status_code=200)
        fresh = await record(outcome)
        status = "recorded" if fresh else "duplicate"
        WEBHOOKS.labels(event_name, status).inc()
        return JSONResponse(
            {"status": status, "run": outcome.label, "failure_id": outcome.failure_id}, status_code=202
        )

    return router


def _sender(payload: object) -> str | None:
    """The ``owner/name`` a delivery comes from, when it names one plainly."""
    repository = payload.get("repository") if isinstance(payload, dict) else None
    name = repository.get("full_name") if isinstance(repository, dict) else None
    if isinstance(name, str) and _REPOSITORY.fullmatch(name) and ".." not in name:
        return name
    return None


async def _read_capped(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_WEBHOOK_BYTES:
        raise HTTPException(413, f"webhook body over {MAX_WEBHOOK_BYTES} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_WEBHOOK_BYTES:
            raise HTTPException(413, f"webhook body over {MAX_WEBHOOK_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
