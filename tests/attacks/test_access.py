"""Regressions of issue 9, defects 4 (approval ids), 5 (reads open) and 6 (approver identity).

The app is the one ``medic run`` serves (projector, approval and dashboard behind the
host's guards), over real HTTP, with real NATS and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest

from medic.bus import Bus
from medic.config import load_settings
from medic.events import ActionKind, GateDecided, GateDecidedPayload, GateOutcome, ProposedAction
from medic.runtime import HttpServer, ServiceHost
from medic.services.approval.records import approval_id_for
from medic.services.approval.service import ApprovalService
from medic.services.dashboard.service import DashboardService
from medic.services.projector.service import ProjectorService

ALICE = "alice-token-0123456789"
READER = "reader-token-0123456789"
SHARED = "shared-token-0123456789"

Start = Callable[..., Awaitable[str]]


@pytest.fixture
async def start(bus: Bus, database_url: str, db_schema: str) -> AsyncIterator[Start]:
    stack = contextlib.AsyncExitStack()

    async def run(**overrides: Any) -> str:
        await bus.ensure_streams()
        settings = load_settings(**overrides)
        projector = ProjectorService(database_url=database_url, schema=db_schema, pool_size=2)
        approval = ApprovalService(settings=settings, bus=bus)
        host = ServiceHost(settings=settings, bus=bus, services=[projector, approval, DashboardService()])
        server = HttpServer(host.app())
        await server.start()
        stack.push_async_callback(server.stop)
        await host.start()
        stack.push_async_callback(host.stop)
        return server.url

    yield run
    await stack.aclose()
    with contextlib.suppress(Exception):
        await bus.js.delete_key_value(f"{bus.topology.stream}_approvals")


PERSONAL = {
    "alice": {"sha256": hashlib.sha256(ALICE.encode()).hexdigest()},
    "rita": {"token": READER, "scopes": ["read"]},
}


async def pending_approval(bus: Bus) -> str:
    gate = GateDecided(
        failure_id=str(uuid.uuid4()),
        causation_id=str(uuid.uuid4()),
        actor="safety-gate",
        payload=GateDecidedPayload(
            outcome=GateOutcome.REQUIRE_APPROVAL,
            reasons=("protected",),
            risk=2,
            risk_threshold=4,
            action=ProposedAction(kind=ActionKind.RERUN_FAILED_JOBS),
            repository="acme/api",
            run_id=7,
            run_attempt=1,
        ),
    )
    await bus.publish(gate)
    approval_id = approval_id_for(gate.event_id)
    return approval_id


async def decide(http: httpx.AsyncClient, approval_id: str, **kw: Any) -> httpx.Response:
    for _ in range(100):  # the approval service opens it asynchronously
        response = await http.post(f"/api/approvals/{approval_id}/approve", **kw)
        if response.status_code != 404:
            return response
        await asyncio.sleep(0.1)
    return response


READS = [
    "/api/audit",
    "/api/audit/export?format=csv",
    "/api/failures",
    "/api/metrics/summary",
    "/api/approvals",
    "/api/dashboard",
]


async def test_with_a_token_set_every_read_needs_one_and_health_stays_open(start: Start) -> None:
    url = await start(api_token=SHARED)  # the set-up: only MEDIC_API_TOKEN
    async with httpx.AsyncClient(base_url=url) as http:
        for path in READS:
            assert (await http.get(path)).status_code == 401, path
            wrong = await http.get(path, headers={"Authorization": "Bearer nope"})
            assert wrong.status_code == 401, path
            ok = await http.get(path, headers={"Authorization": f"Bearer {SHARED}"})
            assert ok.status_code == 200, (path, ok.text)
        for path in ("/healthz", "/metrics"):
            assert (await http.get(path)).status_code == 200, path
        assert (await http.get("/readyz")).status_code in (200, 503)  # open: never 401
        page = await http.get("/")
        assert page.status_code == 401 and "<form" in page.text  # the sign-in page


async def test_the_shared_token_reads_but_never_approves(start: Start, bus: Bus) -> None:
    url = await start(api_token=SHARED, api_tokens=PERSONAL)
    approval_id = await pending_approval(bus)
    async with httpx.AsyncClient(base_url=url) as http:
        for token in (SHARED, READER):
            refused = await decide(
                http, approval_id, json={"approver": "alice"}, headers={"Authorization": f"Bearer {token}"}
            )
            assert refused.status_code == 403, refused.text
        granted = await decide(
            http, approval_id, json={"approver": "mallory"}, headers={"Authorization": f"Bearer {ALICE}"}
        )
        assert granted.status_code == 200, granted.text
        assert granted.json()["decided_by"] == "token:alice"


async def test_a_trusted_proxy_identity_is_recorded_and_an_untrusted_one_ignored(
    start: Start, bus: Bus
) -> None:
    url = await start(proxy_identity_header="X-Forwarded-Email", trusted_proxies="127.0.0.1/32")
    approval_id = await pending_approval(bus)
    async with httpx.AsyncClient(base_url=url) as http:
        assert (await http.get("/api/audit")).status_code == 401
        spoofed = {"X-Forwarded-Email": "carol@example.com\r\nX-Admin: 1"}
        assert (await http.get("/api/audit", headers={"X-Forwarded-Email": "a\x1bb"})).status_code in (
            400,
            401,
        )
        with contextlib.suppress(httpx.LocalProtocolError):  # httpx itself may refuse the header
            assert (await http.get("/api/audit", headers=spoofed)).status_code in (400, 401)
        granted = await decide(http, approval_id, json={}, headers={"X-Forwarded-Email": "carol@example.com"})
        assert granted.status_code == 200, granted.text
        assert granted.json()["decided_by"] == "proxy:carol@example.com"

    url = await start(proxy_identity_header="X-Forwarded-Email", trusted_proxies="10.0.0.0/8")
    async with httpx.AsyncClient(base_url=url) as http:
        response = await http.get("/api/audit", headers={"X-Forwarded-Email": "carol@example.com"})
        assert response.status_code == 401  # 127.0.0.1 is not a trusted proxy here


async def test_the_dashboard_signs_in_with_a_cookie_and_refuses_foreign_origins(
    start: Start, bus: Bus
) -> None:
    url = await start(api_tokens=PERSONAL)
    approval_id = await pending_approval(bus)
    async with httpx.AsyncClient(base_url=url) as http:
        bad = await http.post("/auth/session", data={"token": "guess"})
        assert bad.status_code == 401
        signed = await http.post("/auth/session", data={"token": ALICE})
        assert signed.status_code == 303
        cookie = signed.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie
        page = await http.get("/")
        assert page.status_code == 200 and "approvals" in page.text.lower()
        figures = await http.get("/api/dashboard")
        assert figures.status_code == 200 and not figures.json().get("problems")
        host = url.split("://", 1)[1]
        foreign = await decide(http, approval_id, json={}, headers={"Origin": "https://evil.example"})
        assert foreign.status_code == 403
        own = await decide(http, approval_id, json={}, headers={"Origin": f"http://{host}"})
        assert own.status_code == 200, own.text
        assert own.json()["decided_by"] == "token:alice"


@pytest.mark.parametrize("approval_id", ["not-a-uuid", "..", "a.b.c", "%2e%2e", "x" * 300, "*", "%00"])
async def test_an_approval_id_that_is_no_uuid_is_a_4xx(start: Start, approval_id: str) -> None:
    url = await start()
    async with httpx.AsyncClient(base_url=url) as http:
        response = await http.post(f"/api/approvals/{approval_id}/approve", json={"approver": "alice"})
    assert response.status_code in (400, 404, 422), (approval_id, response.status_code, response.text)


@pytest.mark.parametrize(
    "approver", ["mallory\nAPPROVED", "a\x1b[2Kb", "a\u202eb", "\\ud800", "x\x00y", "token:alice"]
)
async def test_open_mode_refuses_control_characters_and_borrowed_prefixes(
    start: Start, bus: Bus, approver: str
) -> None:
    url = await start()
    approval_id = await pending_approval(bus)
    async with httpx.AsyncClient(base_url=url) as http:
        quoted = approver.replace("\n", "\\n")
        body = ('{"approver": "' + quoted + '"}').encode("utf-8", "surrogatepass")
        headers = {"content-type": "application/json"}
        response = await decide(http, approval_id, content=body, headers=headers)
        if approver == "token:alice":  # allowed, but recorded as unverified: it cannot pass for a token
            assert response.status_code == 200 and response.json()["decided_by"] == "unverified:token:alice"
        else:
            assert response.status_code in (400, 422), (approver, response.text)
