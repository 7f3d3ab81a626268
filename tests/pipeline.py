"""Every service wired together in this process against real NATS, PostgreSQL and HTTP.

Used by the end-to-end tests and by ``make bench``: the sandbox GitHub and sandbox model
are served on their own ports and reached over HTTP, exactly as in ``medic run``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
from pydantic import SecretStr

from medic.bus import Topology
from medic.config import Settings, load_settings
from medic.embedded import free_port
from medic.runtime import HttpServer, ServiceHost
from medic.sandbox.github import SandboxGitHub, create_sandbox_github
from medic.sandbox.openai import create_sandbox_model
from medic.sandbox.slack import SandboxSlack, create_sandbox_slack
from medic.services import composition

SETTLED = {"awaiting_approval", "remediated", "remediation_failed", "rejected", "expired", "no_action"}
WEBHOOK_SECRET = "e2e-webhook-secret"


@dataclass
class Pipeline:
    settings: Settings
    host: ServiceHost
    url: str
    sandbox: SandboxGitHub | None
    """None when the sandbox GitHub runs in another process (``github_api_url``)."""
    sandbox_url: str
    http: httpx.AsyncClient
    slack: SandboxSlack | None = None
    slack_url: str = ""
    """Where the sandbox Slack serves (``/_sandbox/history`` etc.), when started with ``slack=True``."""

    async def summary(self) -> dict[str, Any]:
        response = await self.http.get(f"{self.url}/api/metrics/summary")
        response.raise_for_status()
        return dict(response.json())

    async def audit(self, failure_id: str) -> list[dict[str, Any]]:
        response = await self.http.get(
            f"{self.url}/api/audit", params={"failure_id": failure_id, "limit": 500}
        )
        response.raise_for_status()
        return list(response.json()["items"])

    async def wait_settled(self, count: int, *, within: float) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        summary: dict[str, Any] = {}
        while loop.time() < deadline:
            summary = await self.summary()
            states = summary.get("by_state", {})
            settled = sum(n for state, n in states.items() if state in SETTLED)
            if summary.get("total_failures", 0) >= count and settled >= count:
                return summary
            await asyncio.sleep(0.2)
        raise AssertionError(f"not settled within {within}s: {summary}")


@contextlib.asynccontextmanager
async def running_pipeline(
    *,
    nats_url: str,
    database_url: str,
    topology: Topology,
    db_schema: str,
    slack: bool = False,
    port: int | None = None,
    github_api_url: str | None = None,
    **overrides: Any,
) -> AsyncIterator[Pipeline]:
    """Every service on one port; with ``slack`` also the sandbox Slack, which clicks back to
    ``/slack/events`` with signed requests exactly as ``medic run`` wires it.

    With ``github_api_url`` the sandbox GitHub is one already serving elsewhere (the bench runs
    it in its own process, so that its CPU is not the services'), posting to ``port``."""
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    sandbox = (
        None
        if github_api_url is not None
        else create_sandbox_github(
            webhook_url=f"{url}/webhooks/github", webhook_secret=WEBHOOK_SECRET, rerun_delay_seconds=0.2
        )
    )
    model = create_sandbox_model()
    sandbox_server = HttpServer(sandbox.app) if sandbox is not None else None
    model_server = HttpServer(model.app)
    if sandbox_server is not None:
        await sandbox_server.start()
    await model_server.start()
    github_url = sandbox_server.url if sandbox_server is not None else str(github_api_url)
    slack_sandbox = create_sandbox_slack(events_url=f"{url}/slack/events") if slack else None
    slack_server = HttpServer(slack_sandbox.app) if slack_sandbox is not None else None
    if slack_sandbox is not None and slack_server is not None:
        await slack_server.start()
        overrides.update(
            slack_bot_token=SecretStr(slack_sandbox.token),
            slack_signing_secret=SecretStr(slack_sandbox.signing_secret),
            slack_api_url=f"{slack_server.url}/api/",
            slack_messages_per_second=overrides.get("slack_messages_per_second", 20.0),
        )
    settings = load_settings(
        nats_url=nats_url,
        database_url=database_url,
        stream_name=topology.stream,
        subject_prefix=topology.prefix,
        db_schema=db_schema,
        http_port=port,
        github_api_url=github_url,
        github_token=SecretStr("sandbox-token"),
        github_webhook_secret=SecretStr(WEBHOOK_SECRET),
        model_base_url=f"{model_server.url}/v1",
        model_api_key=SecretStr("sandbox"),
        **overrides,
    )
    try:
        async with composition.open_parts(settings) as parts:
            host = composition.build_host(settings, parts, composition.SERVICE_NAMES, {})
            server = HttpServer(host.app(), port=port)
            await server.start()
            await host.start()
            try:
                token = settings.api_token
                auth = {"Authorization": f"Bearer {token.get_secret_value()}"} if token else {}
                async with httpx.AsyncClient(timeout=10, headers=auth) as http:
                    yield Pipeline(
                        settings,
                        host,
                        url,
                        sandbox,
                        github_url,
                        http,
                        slack=slack_sandbox,
                        slack_url=slack_server.url if slack_server is not None else "",
                    )
            finally:
                await host.stop()
                await server.stop()
    finally:
        if sandbox_server is not None:
            await sandbox_server.stop()
        await model_server.stop()
        if slack_server is not None:
            await slack_server.stop()
