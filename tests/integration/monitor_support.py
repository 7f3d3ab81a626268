"""Shared by the monitor's integration tests: a served sandbox GitHub, monitors on a real bus."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from fastapi import FastAPI
from nats.js.errors import NotFoundError
from pydantic import SecretStr

from medic.bus import Bus
from medic.config import Settings, load_settings
from medic.events import FailureDetected, decode_event
from medic.github.client import GitHubClient
from medic.runtime import HttpServer
from medic.sandbox import github_payloads as payloads
from medic.sandbox.github import SandboxGitHub, create_sandbox_github
from medic.sandbox.github_store import Run
from medic.services.monitor.service import MonitorService
from medic.services.monitor.signature import sign
from tests.waiting import wait_until_caught_up

SECRET = "monitor-test-secret"
FAST_POLL_MINUTES = 0.4 / 60
"""A poll every 0.4 s."""


@dataclass
class MonitorWorld:
    bus: Bus
    sandbox: SandboxGitHub
    github_url: str
    monitors: list[MonitorService] = field(default_factory=list)
    clients: list[GitHubClient] = field(default_factory=list)
    servers: list[HttpServer] = field(default_factory=list)

    def settings(self, **overrides: Any) -> Settings:
        base: dict[str, Any] = {
            "github_webhook_secret": SecretStr(SECRET),
            "github_api_url": self.github_url,
            "polling_interval_minutes": FAST_POLL_MINUTES,
        }
        return load_settings(**(base | overrides))

    async def monitor(self, **overrides: Any) -> MonitorService:
        github = GitHubClient(base_url=self.github_url, token="t", max_retry_seconds=1.0)
        self.clients.append(github)
        service = MonitorService(settings=self.settings(**overrides), bus=self.bus, github=github)
        await service.start()
        self.monitors.append(service)
        return service

    async def serve(self, service: MonitorService) -> str:
        app = FastAPI()
        app.include_router(service.router())
        server = HttpServer(app)
        await server.start()
        self.servers.append(server)
        return server.url

    def charged(self) -> int:
        """Requests counted against the test token's rate limit so far."""
        window = self.sandbox.budget.windows.get("t")
        return 0 if window is None else window.used


@contextlib.asynccontextmanager
async def monitor_world(
    bus: Bus, *, wrap: Callable[[Any], Any] | None = None, **sandbox_options: Any
) -> AsyncIterator[MonitorWorld]:
    """``wrap`` puts an ASGI wrapper (e.g. a :class:`~tests.integration.request_gate.RequestGate`)
    in front of the sandbox GitHub."""
    sandbox = create_sandbox_github(webhook_url=None, webhook_secret=SECRET, **sandbox_options)
    server = HttpServer(wrap(sandbox.app) if wrap else sandbox.app)
    await server.start()
    world = MonitorWorld(bus=bus, sandbox=sandbox, github_url=server.url)
    try:
        yield world
    finally:
        for service in world.monitors:
            await service.stop()
        for http in world.servers:
            await http.stop()
        for client in world.clients:
            await client.aclose()
        await sandbox.drain()
        await server.stop()
        for bucket in ("monitor_cursors", "monitor_detected", "monitor_senders"):
            with contextlib.suppress(NotFoundError):
                await bus.js.delete_key_value(f"{bus.topology.stream}_{bucket}")
        with contextlib.suppress(NotFoundError):
            await bus.js.delete_stream(f"{bus.topology.stream}_INTAKE")


async def all_detected(bus: Bus) -> list[FailureDetected]:
    """Every FailureDetected on the stream right now."""
    try:
        info = await bus.js.stream_info(bus.topology.stream)
    except NotFoundError:
        return []
    if not info.state.messages:
        return []
    sub = await bus.js.pull_subscribe(bus.topology.subject("FailureDetected"), stream=bus.topology.stream)
    events: list[FailureDetected] = []
    try:
        while True:
            try:
                batch = await sub.fetch(100, timeout=0.3)
            except TimeoutError:
                break
            for msg in batch:
                event = decode_event(msg.data)
                assert isinstance(event, FailureDetected)
                events.append(event)
    finally:
        await sub.unsubscribe()
    return events


async def wait_for_detected(bus: Bus, count: int, *, within: float = 10.0) -> list[FailureDetected]:
    deadline = asyncio.get_running_loop().time() + within
    while True:
        events = await all_detected(bus)
        if len(events) >= count or asyncio.get_running_loop().time() > deadline:
            return events
        await asyncio.sleep(0.2)


async def intake_settled(bus: Bus) -> None:
    """Wait until the monitor has inspected everything recorded so far.

    The positive signal before asserting that nothing more was detected: every run on the
    intake stream has been settled by the monitor's consumer (reported, or found reported).
    """
    await wait_until_caught_up(bus, "monitor-intake", stream=f"{bus.topology.stream}_INTAKE")


def attempts(events: list[FailureDetected]) -> list[tuple[str, int, int]]:
    return sorted((e.payload.repository, e.payload.run_id, e.payload.run_attempt) for e in events)


async def post_webhook(
    url: str, event: str, payload: dict[str, Any], *, delivery: str = "d-1"
) -> httpx.Response:
    body = json.dumps(payload).encode()
    headers = {
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery,
        "Content-Type": "application/json",
        "X-Hub-Signature-256": sign(body, SECRET),
    }
    async with httpx.AsyncClient() as client:
        return await client.post(f"{url}/webhooks/github", content=body, headers=headers)


def run_completed_payload(world: MonitorWorld, run: Run) -> dict[str, Any]:
    links = payloads.Links(api=world.github_url)
    return payloads.workflow_run_event("completed", run, run.latest, links)


def job_completed_payload(world: MonitorWorld, run: Run) -> dict[str, Any]:
    """A ``workflow_job`` ``completed`` delivery for the run's failed job, as GitHub sends it."""
    links = payloads.Links(api=world.github_url)
    failed = next(job for job in run.latest.jobs if job.conclusion == "failure")
    job = payloads.job(failed, run, links)
    repository = payloads.full_repository(run.repository, links)
    return {"action": "completed", "workflow_job": job, "repository": repository}


async def wait_until(condition: Callable[[], bool], *, within: float = 10.0) -> None:
    """Poll a condition on our own objects (the tests' stand-in for an event they do not expose)."""
    async with asyncio.timeout(within):
        while not condition():  # noqa: ASYNC110 - the state is plain attributes, nothing to await
            await asyncio.sleep(0.05)
