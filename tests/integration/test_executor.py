"""The executor against the sandbox GitHub over HTTP and a real bus: act once, verify by the next run."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from medic.bus import Bus, Delivery
from medic.config import load_settings
from medic.events import (
    ActionKind,
    ApprovalGranted,
    ApprovalGrantedPayload,
    Envelope,
    GateDecided,
    GateDecidedPayload,
    GateOutcome,
    ProposedAction,
    RemediationFinished,
    RemediationOutcome,
    RemediationStarted,
    decode_event,
    derive_failure_id,
)
from medic.github.client import GitHubClient
from medic.runtime import HttpServer, ServiceHost
from medic.sandbox.github import SandboxGitHub, create_sandbox_github
from medic.services.executor.service import ExecutorService
from medic.services.executor.store import IntentState, RemediationIntent, open_intents
from tests.waiting import wait_until_caught_up

REPO = "octo-org/octo-repo"


@dataclass
class Executor:
    service: ExecutorService
    bus: Bus
    sandbox: SandboxGitHub
    github: GitHubClient


@pytest.fixture
async def executor(bus: Bus) -> AsyncIterator[Executor]:
    sandbox = create_sandbox_github(webhook_url=None, webhook_secret="unused", rerun_delay_seconds=0.2)
    sandbox_server = HttpServer(sandbox.app)
    await sandbox_server.start()
    settings = load_settings(github_api_url=sandbox_server.url, verify_timeout_seconds=5)
    github = GitHubClient(base_url=sandbox_server.url, token="t", max_retry_seconds=2)
    service = ExecutorService(settings=settings, bus=bus, github=github)
    host = ServiceHost(settings=settings, bus=bus, services=[service])
    await host.start()
    yield Executor(service, bus, sandbox, github)
    await host.stop()
    await sandbox.drain()
    await github.aclose()
    await sandbox_server.stop()
    with contextlib.suppress(Exception):
        await bus.js.delete_key_value(f"{bus.topology.stream}_remediations")


def auto_order(repository: str, run_id: int, action: ProposedAction) -> GateDecided:
    return GateDecided(
        failure_id=derive_failure_id(repository, run_id, 1),
        causation_id=str(uuid.uuid4()),
        actor="safety-gate",
        payload=GateDecidedPayload(
            outcome=GateOutcome.AUTO_REMEDIATE,
            reasons=("risk 1 <= threshold 4",),
            risk=1,
            risk_threshold=4,
            action=action,
            repository=repository,
            run_id=run_id,
            run_attempt=1,
        ),
    )


def rerun() -> ProposedAction:
    return ProposedAction(kind=ActionKind.RERUN_FAILED_JOBS)


async def count(bus: Bus, event_type: str) -> int:
    subject = bus.topology.subject(event_type)
    info = await bus.js.stream_info(bus.topology.stream, subjects_filter=subject)
    return int((info.state.subjects or {}).get(subject, 0))


async def last(bus: Bus, event_type: str) -> Any:
    msg = await bus.js.get_last_msg(bus.topology.stream, bus.topology.subject(event_type))
    assert msg.data is not None
    return decode_event(msg.data)


async def finished(bus: Bus, *, within: float = 10.0) -> RemediationFinished:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while loop.time() < deadline:
        if await count(bus, "RemediationFinished"):
            event = await last(bus, "RemediationFinished")
            assert isinstance(event, RemediationFinished)
            return event
        await asyncio.sleep(0.05)
    raise AssertionError(f"no RemediationFinished within {within}s")


async def attempts(executor: Executor, repository: str, run_id: int) -> int:
    return (await executor.github.get_run(repository, run_id)).run_attempt


async def handle_again(executor: Executor, event_type: str) -> None:
    """Handle the stored message once more, exactly as a redelivery would hand it over."""
    bus = executor.bus
    sub = await bus.js.pull_subscribe(bus.topology.subject(event_type), stream=bus.topology.stream)
    try:
        (msg,) = await sub.fetch(1, timeout=5)
        meta = msg.metadata
        await executor.service.handle(
            decode_event(msg.data), Delivery(meta.sequence.stream, meta.num_delivered, msg)
        )
    finally:
        await sub.unsubscribe()


async def test_transient_failure_is_rerun_and_verified_green(executor: Executor) -> None:
    run = executor.sandbox.add_failed_run(REPO, "flaky_test")
    order = auto_order(run.repository.full_name, run.id, rerun())
    await executor.bus.publish(order)

    done = await finished(executor.bus)

    assert done.payload.outcome is RemediationOutcome.SUCCEEDED, done.payload.detail
    assert done.payload.verified_run_attempt == 2
    assert done.causation_id == order.event_id and done.failure_id == order.failure_id
    assert (done.payload.repository, done.payload.run_id) == (REPO, run.id)
    assert "re-ran the failed jobs" in done.payload.detail
    started = await last(executor.bus, "RemediationStarted")
    assert isinstance(started, RemediationStarted)
    assert started.payload.action == rerun() and started.payload.approved_by is None
    assert started.occurred_at <= done.occurred_at
    assert await count(executor.bus, "RemediationStarted") == 1
    assert await attempts(executor, REPO, run.id) == 2


async def test_non_transient_failure_stays_red_and_is_reported_failed(executor: Executor) -> None:
    run = executor.sandbox.add_failed_run(REPO, "unit_test_assertion")
    await executor.bus.publish(auto_order(REPO, run.id, rerun()))

    done = await finished(executor.bus)

    assert done.payload.outcome is RemediationOutcome.FAILED
    assert done.payload.verified_run_attempt == 2
    assert "concluded failure" in done.payload.detail
    assert await attempts(executor, REPO, run.id) == 2


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        (ActionKind.OPEN_FIX_PR, "fix pull request refused: the fix proposes no edits"),
        (ActionKind.NONE, "no action was proposed"),
        (ActionKind.CLEAR_CACHE, "clear_cache needs a cache key"),
    ],
)
async def test_refused_action_finishes_failed_without_touching_github(
    executor: Executor, kind: ActionKind, reason: str
) -> None:
    run = executor.sandbox.add_failed_run(REPO, "flaky_test")
    await executor.bus.publish(auto_order(REPO, run.id, ProposedAction(kind=kind)))

    done = await finished(executor.bus)

    assert done.payload.outcome is RemediationOutcome.FAILED
    assert reason in done.payload.detail
    assert done.payload.verified_run_attempt is None
    await wait_until_caught_up(executor.bus, "executor")  # the handler returned: it did all it would
    assert await attempts(executor, REPO, run.id) == 1
    intent = await executor.service.intents.get(done.failure_id)
    assert intent is not None and intent.record.state is IntentState.FINISHED


async def test_the_same_order_handled_twice_reruns_once(executor: Executor) -> None:
    run = executor.sandbox.add_failed_run(REPO, "flaky_test")
    await executor.bus.publish(auto_order(REPO, run.id, rerun()))
    await finished(executor.bus)

    await handle_again(executor, "GateDecided")
    await wait_until_caught_up(executor.bus, "executor")

    assert await attempts(executor, REPO, run.id) == 2
    assert await count(executor.bus, "RemediationFinished") == 1
    assert await count(executor.bus, "RemediationStarted") == 1


async def test_crash_after_the_call_to_github_does_not_rerun_again(executor: Executor) -> None:
    """The intent was written and the re-run sent, then the process died before recording it."""
    run = executor.sandbox.add_failed_run(REPO, "flaky_test")
    order = auto_order(REPO, run.id, rerun())
    store = await open_intents(executor.bus.js, executor.bus.topology)
    await store.put(
        order.failure_id,
        RemediationIntent(
            failure_id=order.failure_id, repository=REPO, run_id=run.id, action=rerun(), baseline_attempt=1
        ),
    )
    await executor.github.rerun_failed_jobs(REPO, run.id)

    await executor.bus.publish(order)
    done = await finished(executor.bus)

    assert done.payload.outcome is RemediationOutcome.SUCCEEDED
    assert done.payload.verified_run_attempt == 2
    assert "gone through before a restart" in done.payload.detail
    assert await attempts(executor, REPO, run.id) == 2


async def test_approved_order_is_carried_out_the_same_way(executor: Executor) -> None:
    run = executor.sandbox.add_failed_run(REPO, "flaky_test")
    granted = ApprovalGranted(
        failure_id=derive_failure_id(REPO, run.id, 1),
        actor="alice",
        payload=ApprovalGrantedPayload(
            approval_id=str(uuid.uuid4()), approver="alice", action=rerun(), repository=REPO, run_id=run.id
        ),
    )
    await executor.bus.publish(granted)

    done = await finished(executor.bus)

    assert done.payload.outcome is RemediationOutcome.SUCCEEDED
    assert done.payload.verified_run_attempt == 2
    assert done.causation_id == granted.event_id
    started = await last(executor.bus, "RemediationStarted")
    assert isinstance(started, RemediationStarted) and started.payload.approved_by == "alice"
    intent = await executor.service.intents.get(granted.failure_id)
    assert intent is not None and intent.record.approved_by == "alice"

    await handle_again(executor, "ApprovalGranted")
    assert await attempts(executor, REPO, run.id) == 2


@pytest.mark.parametrize("outcome", [GateOutcome.REQUIRE_APPROVAL, GateOutcome.NO_ACTION])
async def test_gate_decisions_that_are_not_auto_do_nothing(executor: Executor, outcome: GateOutcome) -> None:
    run = executor.sandbox.add_failed_run(REPO, "flaky_test")
    order = auto_order(REPO, run.id, rerun())
    held: Envelope = order.model_copy(
        update={"payload": order.payload.model_copy(update={"outcome": outcome})}
    )
    await executor.bus.publish(held)
    for _ in range(100):
        if await executor.bus.pending("executor") == 0:
            break
        await asyncio.sleep(0.05)
    assert await executor.bus.pending("executor") == 0
    assert await count(executor.bus, "RemediationStarted") == 0
    assert await attempts(executor, REPO, run.id) == 1
