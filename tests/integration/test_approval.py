"""The approval service on a real bus and over real HTTP: request once, decide once, expire, reconcile."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest

from medic.bus import Bus, Delivery
from medic.config import load_settings
from medic.events import (
    ActionKind,
    ApprovalExpired,
    ApprovalGranted,
    ApprovalRejected,
    ApprovalRequested,
    GateDecided,
    GateDecidedPayload,
    GateOutcome,
    ProposedAction,
    decode_event,
    utc_now,
)
from medic.runtime import HttpServer, ServiceHost
from medic.services.approval.records import ApprovalRecord, ApprovalStatus, approval_id_for
from medic.services.approval.service import ApprovalService
from medic.services.approval.store import open_approvals

REPO = "octo-org/billing-api"
RERUN = ProposedAction(kind=ActionKind.RERUN_FAILED_JOBS)
DECISIONS = ("ApprovalGranted", "ApprovalRejected", "ApprovalExpired")


@dataclass
class Approvals:
    service: ApprovalService
    host: ServiceHost
    http: httpx.AsyncClient
    bus: Bus


StartApprovals = Callable[..., Awaitable[Approvals]]


@pytest.fixture
async def start_approvals(bus: Bus) -> AsyncIterator[StartApprovals]:
    """Start the approval service (consumer, sweeper, HTTP) with the given settings overrides."""
    stack = contextlib.AsyncExitStack()

    async def start(*, sweep_seconds: float = 5.0, **overrides: Any) -> Approvals:
        settings = load_settings(**overrides)
        service = ApprovalService(settings=settings, bus=bus, sweep_seconds=sweep_seconds)
        host = ServiceHost(settings=settings, bus=bus, services=[service])
        server = HttpServer(host.app())
        await server.start()
        stack.push_async_callback(server.stop)
        await host.start()
        stack.push_async_callback(host.stop)
        http = httpx.AsyncClient(base_url=server.url, timeout=10)
        stack.push_async_callback(http.aclose)
        return Approvals(service, host, http, bus)

    yield start
    await stack.aclose()
    with contextlib.suppress(Exception):
        await bus.js.delete_key_value(f"{bus.topology.stream}_approvals")


def gate_decided(outcome: GateOutcome = GateOutcome.REQUIRE_APPROVAL, *, run_id: int = 7) -> GateDecided:
    return GateDecided(
        failure_id=str(uuid.uuid4()),
        causation_id=str(uuid.uuid4()),
        actor="safety-gate",
        payload=GateDecidedPayload(
            outcome=outcome,
            reasons=(f"{REPO} is a protected repository",),
            risk=2,
            risk_threshold=4,
            action=RERUN,
            repository=REPO,
            run_id=run_id,
            run_attempt=1,
        ),
    )


async def count(bus: Bus, event_type: str) -> int:
    subject = bus.topology.subject(event_type)
    info = await bus.js.stream_info(bus.topology.stream, subjects_filter=subject)
    return int((info.state.subjects or {}).get(subject, 0))


async def last(bus: Bus, event_type: str) -> Any:
    msg = await bus.js.get_last_msg(bus.topology.stream, bus.topology.subject(event_type))
    assert msg.data is not None
    return decode_event(msg.data)


async def wait_for(bus: Bus, event_type: str, n: int = 1, *, within: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while loop.time() < deadline:
        if await count(bus, event_type) >= n:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{event_type} x{n} not published within {within}s")


async def settled(bus: Bus, durable: str = "approval", *, within: float = 10.0) -> None:
    """The consumer has handled and acked everything on the stream so far."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while loop.time() < deadline:
        if await bus.pending(durable) == 0:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{durable} still has pending messages")


async def requested(approvals: Approvals) -> tuple[GateDecided, str]:
    """Publish a GateDecided(require_approval) and wait for its ApprovalRequested."""
    gate = gate_decided()
    await approvals.bus.publish(gate)
    await wait_for(approvals.bus, "ApprovalRequested")
    return gate, approval_id_for(gate.event_id)


async def decision_count(bus: Bus) -> int:
    return sum([await count(bus, name) for name in DECISIONS])


# --- request ----------------------------------------------------------------------------


async def test_gate_decision_is_requested_once_even_when_handled_twice(
    start_approvals: StartApprovals,
) -> None:
    approvals = await start_approvals()
    gate, approval_id = await requested(approvals)
    await settled(approvals.bus)

    # handle the very same message again, as a redelivery would
    sub = await approvals.bus.js.pull_subscribe(
        approvals.bus.topology.subject("GateDecided"), stream=approvals.bus.topology.stream
    )
    (msg,) = await sub.fetch(1, timeout=5)
    again = decode_event(msg.data)
    meta = msg.metadata
    await approvals.service.handle(again, Delivery(meta.sequence.stream, meta.num_delivered, msg))
    await sub.unsubscribe()

    assert await count(approvals.bus, "ApprovalRequested") == 1
    event = await last(approvals.bus, "ApprovalRequested")
    assert isinstance(event, ApprovalRequested)
    assert event.causation_id == gate.event_id
    assert event.payload.approval_id == approval_id
    assert event.payload.action == RERUN
    assert event.payload.repository == REPO and event.payload.run_id == 7
    assert event.payload.reasons == gate.payload.reasons
    listed = (await approvals.http.get("/api/approvals")).json()
    assert [a["approval_id"] for a in listed] == [approval_id]
    assert listed[0]["status"] == "pending"


@pytest.mark.parametrize("outcome", [GateOutcome.AUTO_REMEDIATE, GateOutcome.NO_ACTION])
async def test_other_gate_outcomes_request_nothing(
    start_approvals: StartApprovals, outcome: GateOutcome
) -> None:
    approvals = await start_approvals()
    await approvals.bus.publish(gate_decided(outcome))
    await settled(approvals.bus)
    assert await count(approvals.bus, "ApprovalRequested") == 0
    assert (await approvals.http.get("/api/approvals")).json() == []


# --- decide over HTTP -------------------------------------------------------------------


async def test_approve_publishes_granted_with_approver_and_action(start_approvals: StartApprovals) -> None:
    approvals = await start_approvals()
    gate, approval_id = await requested(approvals)

    response = await approvals.http.post(
        f"/api/approvals/{approval_id}/approve", json={"approver": "alice", "comment": "flaky, go"}
    )
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "granted"
    assert response.json()["decided_by"] == "unverified:alice"  # no identity source: the typed name, marked

    assert await count(approvals.bus, "ApprovalGranted") == 1
    granted = await last(approvals.bus, "ApprovalGranted")
    assert isinstance(granted, ApprovalGranted)
    assert granted.failure_id == gate.failure_id
    assert granted.actor == "unverified:alice"
    assert granted.payload.approver == "unverified:alice"
    assert granted.payload.action == RERUN
    assert (granted.payload.repository, granted.payload.run_id) == (REPO, 7)
    assert granted.payload.comment == "flaky, go"
    found = await approvals.service.desk.store.get(approval_id)
    assert found is not None and found.record.published is True


async def test_reject_publishes_rejected_with_reason(start_approvals: StartApprovals) -> None:
    approvals = await start_approvals()
    _, approval_id = await requested(approvals)
    response = await approvals.http.post(
        f"/api/approvals/{approval_id}/reject", json={"approver": "bob", "comment": "real bug"}
    )
    assert response.status_code == 200, response.text
    rejected = await last(approvals.bus, "ApprovalRejected")
    assert isinstance(rejected, ApprovalRejected)
    assert (rejected.payload.approver, rejected.payload.reason) == ("unverified:bob", "real bug")
    assert await count(approvals.bus, "ApprovalGranted") == 0


@pytest.mark.parametrize("second", ["approve", "reject"])
async def test_second_decision_is_409(start_approvals: StartApprovals, second: str) -> None:
    approvals = await start_approvals()
    _, approval_id = await requested(approvals)
    first = await approvals.http.post(f"/api/approvals/{approval_id}/approve", json={"approver": "alice"})
    assert first.status_code == 200
    again = await approvals.http.post(f"/api/approvals/{approval_id}/{second}", json={"approver": "bob"})
    assert again.status_code == 409
    assert "already granted" in again.json()["detail"]
    assert await decision_count(approvals.bus) == 1
    found = await approvals.service.desk.store.get(approval_id)
    assert found is not None and found.record.decided_by == "unverified:alice"


async def test_concurrent_approve_and_reject_give_one_decision(start_approvals: StartApprovals) -> None:
    approvals = await start_approvals()
    _, approval_id = await requested(approvals)
    responses = await asyncio.gather(
        *(
            approvals.http.post(f"/api/approvals/{approval_id}/{verb}", json={"approver": f"p{i}"})
            for i, verb in enumerate(["approve", "reject"] * 4)
        )
    )
    codes = sorted(r.status_code for r in responses)
    assert codes == [200] + [409] * 7
    assert await decision_count(approvals.bus) == 1


async def test_unknown_approval_is_404(start_approvals: StartApprovals) -> None:
    approvals = await start_approvals()
    response = await approvals.http.post(f"/api/approvals/{uuid.uuid4()}/approve", json={"approver": "alice"})
    assert response.status_code == 404
    assert await decision_count(approvals.bus) == 0


MALFORMED_BODIES: list[dict[str, Any]] = [
    {"json": {}},
    {"json": {"approver": ""}},
    {"json": {"comment": "no approver"}},
    {"json": {"approver": "mallory\nAPPROVED by admin"}},
    {"json": {"approver": "mal\x1b[2Klory"}},
    {"json": {"approver": "mal\x00lory"}},
    {"json": {"approver": "a" * 101}},
    {"json": {"approver": "alice", "comment": "x" * 10_240}},
    {"json": {"approver": "alice", "extra": True}},
    {"json": {"approver": 42}},
    {"json": ["alice"]},
    {"content": b"approver=alice", "headers": {"Content-Type": "application/x-www-form-urlencoded"}},
    {"content": b"{not json", "headers": {"Content-Type": "application/json"}},
    {"content": b"\xff\xfe\x00", "headers": {"Content-Type": "application/json"}},
]


async def test_malformed_bodies_are_refused_and_decide_nothing(start_approvals: StartApprovals) -> None:
    approvals = await start_approvals()
    _, approval_id = await requested(approvals)
    for body in MALFORMED_BODIES:
        response = await approvals.http.post(f"/api/approvals/{approval_id}/approve", **body)
        # 422 for a body that breaks the schema; 400 for bytes that are not even text
        assert response.status_code in (400, 422), (body, response.text)
    assert await decision_count(approvals.bus) == 0
    found = await approvals.service.desk.store.get(approval_id)
    assert found is not None and found.record.status is ApprovalStatus.PENDING
    ok = await approvals.http.post(f"/api/approvals/{approval_id}/approve", json={"approver": "alice"})
    assert ok.status_code == 200  # the refusals left the approval decidable


async def test_a_verified_token_is_required_when_set(start_approvals: StartApprovals) -> None:
    """The shared ``api_token`` reads but never approves (it names nobody); a person's token does."""
    approvals = await start_approvals(
        api_token="shared-token", api_tokens={"alice": {"token": "secret-token"}}
    )
    _, approval_id = await requested(approvals)
    for authorization in (
        None,
        "Bearer wrong",
        "Bearer",
        "secret-token",
        "bearer secret-token",
        "Bearer secret",
        "Bearer shared-token",
    ):
        headers = {} if authorization is None else {"Authorization": authorization}
        for verb in ("approve", "reject"):
            refused = await approvals.http.post(
                f"/api/approvals/{approval_id}/{verb}", json={"approver": "alice"}, headers=headers
            )
            assert refused.status_code in (401, 403), authorization
    assert await decision_count(approvals.bus) == 0
    allowed = await approvals.http.post(
        f"/api/approvals/{approval_id}/approve",
        json={"approver": "mallory"},  # a typed name is ignored once the caller is verified
        headers={"Authorization": "Bearer secret-token"},
    )
    assert allowed.status_code == 200
    assert allowed.json()["decided_by"] == "token:alice"
    assert await count(approvals.bus, "ApprovalGranted") == 1


# --- expiry and reconciliation ------------------------------------------------------------


async def test_undecided_request_expires_and_cannot_be_approved_after(
    start_approvals: StartApprovals,
) -> None:
    approvals = await start_approvals(approval_timeout_hours=0.0001, sweep_seconds=0.1)  # 0.36 s
    _, approval_id = await requested(approvals)
    await wait_for(approvals.bus, "ApprovalExpired", within=5)

    expired = await last(approvals.bus, "ApprovalExpired")
    assert isinstance(expired, ApprovalExpired)
    assert expired.payload.approval_id == approval_id
    assert expired.payload.repository == REPO
    response = await approvals.http.post(f"/api/approvals/{approval_id}/approve", json={"approver": "late"})
    assert response.status_code == 409
    assert await count(approvals.bus, "ApprovalGranted") == 0
    assert await count(approvals.bus, "ApprovalExpired") == 1
    found = await approvals.service.desk.store.get(approval_id)
    assert found is not None and found.record.status is ApprovalStatus.EXPIRED and found.record.published


async def test_approve_after_the_deadline_is_409_even_before_the_sweep(
    start_approvals: StartApprovals,
) -> None:
    approvals = await start_approvals(approval_timeout_hours=0.0001, sweep_seconds=60)
    _, approval_id = await requested(approvals)
    found = await approvals.service.desk.store.get(approval_id)
    assert found is not None
    expires_at = found.record.expires_at
    deadline = asyncio.get_running_loop().time() + 30
    while utc_now() <= expires_at:  # the deadline itself is the condition, not a guessed pause
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.05)
    response = await approvals.http.post(f"/api/approvals/{approval_id}/approve", json={"approver": "late"})
    assert response.status_code == 409
    assert "expired" in response.json()["detail"]
    assert await count(approvals.bus, "ApprovalGranted") == 0


async def test_start_publishes_a_decision_recorded_but_not_published(
    bus: Bus, start_approvals: StartApprovals
) -> None:
    """The crash between writing the decision and publishing it: start() finishes the job."""
    store = await open_approvals(bus.js, bus.topology)
    now = utc_now()
    record = ApprovalRecord(
        approval_id=approval_id_for(str(uuid.uuid4())),
        failure_id=str(uuid.uuid4()),
        repository=REPO,
        run_id=11,
        action=RERUN,
        requested_at=now - timedelta(minutes=5),
        expires_at=now + timedelta(hours=1),
        status=ApprovalStatus.GRANTED,
        decided_by="carol",
        decided_at=now - timedelta(minutes=1),
        note="before the crash",
        published=False,
    )
    assert await store.create(record.approval_id, record)

    approvals = await start_approvals()

    assert await count(bus, "ApprovalGranted") == 1
    granted = await last(bus, "ApprovalGranted")
    assert isinstance(granted, ApprovalGranted)
    assert granted.failure_id == record.failure_id
    assert (granted.payload.approval_id, granted.payload.approver) == (record.approval_id, "carol")
    assert (granted.payload.run_id, granted.payload.comment) == (11, "before the crash")
    found = await approvals.service.desk.store.get(record.approval_id)
    assert found is not None and found.record.published is True
    await approvals.service.desk.reconcile()  # a second pass publishes nothing more
    assert await count(bus, "ApprovalGranted") == 1


async def test_start_expires_a_request_past_its_time(bus: Bus, start_approvals: StartApprovals) -> None:
    store = await open_approvals(bus.js, bus.topology)
    now = utc_now()
    record = ApprovalRecord(
        approval_id=approval_id_for(str(uuid.uuid4())),
        failure_id=str(uuid.uuid4()),
        repository=REPO,
        run_id=12,
        action=RERUN,
        requested_at=now - timedelta(hours=25),
        expires_at=now - timedelta(hours=1),
    )
    assert await store.create(record.approval_id, record)
    await start_approvals(sweep_seconds=60)
    assert await count(bus, "ApprovalExpired") == 1
    assert await count(bus, "ApprovalRejected") == 0
