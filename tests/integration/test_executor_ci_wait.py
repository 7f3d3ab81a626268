"""The executor's wait for CI: no handler held while CI runs, a clock that survives restarts, an end.

Real nats-server, the sandbox GitHub over HTTP. A re-run on GitHub takes minutes; these tests
make the sandbox's re-runs slow (seconds) and the executor's handlers few, so a design that
held the order's delivery until CI concluded would visibly queue the orders behind it.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from prometheus_client import REGISTRY

from medic.bus import Bus
from medic.config import Settings, load_settings
from medic.events import RemediationFinished, RemediationOutcome, decode_event
from medic.github.client import GitHubClient
from medic.runtime import HttpServer, ServiceHost
from medic.sandbox.github import SandboxGitHub, create_sandbox_github
from medic.services.executor.service import ExecutorService
from medic.services.executor.store import IntentState
from medic.services.executor.verification import looks_within, pause_before_look
from medic.services.executor.waiting import MAX_WAITS
from tests.integration.test_executor import REPO, auto_order, count, rerun
from tests.integration.test_fix_pull_requests import JEST, SEED_FIX
from tests.waiting import wait_for, wait_until_caught_up


class TwoHandlers(ExecutorService):
    concurrency = 2


@dataclass
class Sandbox:
    github: SandboxGitHub
    url: str
    client: GitHubClient


@pytest.fixture
async def slow_ci() -> AsyncIterator[Callable[[float], Any]]:
    """A sandbox GitHub whose re-runs take ``seconds``; several may be made in one test."""
    made: list[tuple[SandboxGitHub, HttpServer, GitHubClient]] = []

    async def make(seconds: float) -> Sandbox:
        sandbox = create_sandbox_github(
            webhook_url=None, webhook_secret="unused", rerun_delay_seconds=seconds
        )
        server = HttpServer(sandbox.app)
        await server.start()
        client = GitHubClient(base_url=server.url, token="t", max_retry_seconds=1)
        made.append((sandbox, server, client))
        return Sandbox(sandbox, server.url, client)

    yield make
    for sandbox, server, client in made:
        await sandbox.abandon()  # a re-run slower than the test is not waited for
        await sandbox.drain()
        await client.aclose()
        await server.stop()


@contextlib.asynccontextmanager
async def executor_host(
    bus: Bus, ci: Sandbox, settings: Settings, kind: type[ExecutorService] = TwoHandlers
) -> AsyncIterator[ExecutorService]:
    service = kind(settings=settings, bus=bus, github=ci.client)
    host = ServiceHost(settings=settings, bus=bus, services=[service])
    await host.start()
    try:
        yield service
    finally:
        await host.stop()


@pytest.fixture(autouse=True)
async def _forget_intents(bus: Bus) -> AsyncIterator[None]:
    yield
    with contextlib.suppress(Exception):
        await bus.js.delete_key_value(f"{bus.topology.stream}_remediations")


async def finished_events(bus: Bus) -> list[RemediationFinished]:
    sub = await bus.js.pull_subscribe(bus.topology.subject("RemediationFinished"), stream=bus.topology.stream)
    try:
        n = await count(bus, "RemediationFinished")
        msgs = await sub.fetch(n, timeout=5) if n else []
        events = [decode_event(m.data) for m in msgs]
    finally:
        await sub.unsubscribe()
    return [e for e in events if isinstance(e, RemediationFinished)]


async def test_orders_waiting_for_ci_hold_no_handler(bus: Bus, slow_ci: Callable[[float], Any]) -> None:
    """Six re-runs of 3 s each, two handlers: every order is taken and acted on at once."""
    ci: Sandbox = await slow_ci(3.0)
    settings = load_settings(github_api_url=ci.url, verify_timeout_seconds=60)
    runs = [ci.github.add_failed_run(REPO, "flaky_test") for _ in range(6)]
    async with executor_host(bus, ci, settings):
        for run in runs:
            await bus.publish(auto_order(REPO, run.id, rerun()))

        # every order settled (acked) and every re-run sent while CI is still running them
        await wait_until_caught_up(bus, "executor", within=10)
        assert [len(run.attempts) for run in runs] == [2] * 6
        assert await count(bus, "RemediationFinished") == 0

        await wait_for(lambda: _all_finished(bus, 6), within=30, what="six verdicts")
    events = await finished_events(bus)
    assert sorted(e.payload.run_id for e in events) == sorted(run.id for run in runs)
    assert {e.payload.outcome for e in events} == {RemediationOutcome.SUCCEEDED}
    assert {e.payload.verified_run_attempt for e in events} == {2}


async def _all_finished(bus: Bus, n: int) -> bool:
    return await count(bus, "RemediationFinished") >= n


async def test_ci_that_never_concludes_ends_failed_when_the_wait_runs_out(
    bus: Bus, slow_ci: Callable[[float], Any]
) -> None:
    ci: Sandbox = await slow_ci(600.0)
    settings = load_settings(github_api_url=ci.url, verify_timeout_seconds=1.5)
    run = ci.github.add_failed_run(REPO, "flaky_test")
    async with executor_host(bus, ci, settings):
        await bus.publish(auto_order(REPO, run.id, rerun()))
        await wait_for(lambda: _all_finished(bus, 1), within=20, what="the wait's end")
    (done,) = await finished_events(bus)
    assert done.payload.outcome is RemediationOutcome.FAILED
    assert "no finished attempt after 1 within 2s" in done.payload.detail
    assert done.payload.verified_run_attempt is None
    assert len(run.attempts) == 2  # acted once, never verified green


async def test_a_wait_survives_the_executor_restarting(bus: Bus, slow_ci: Callable[[float], Any]) -> None:
    """Stopped while CI runs; a new executor process finishes the wait, acting no second time."""
    ci: Sandbox = await slow_ci(2.0)
    settings = load_settings(github_api_url=ci.url, verify_timeout_seconds=60)
    run = ci.github.add_failed_run(REPO, "flaky_test")
    order = auto_order(REPO, run.id, rerun())
    async with executor_host(bus, ci, settings) as first:
        await bus.publish(order)
        await wait_until_caught_up(bus, "executor", within=10)
        intent = await first.intents.get(order.failure_id)
        assert intent is not None and intent.record.state is IntentState.SENT
    assert await count(bus, "RemediationFinished") == 0

    async with executor_host(bus, ci, settings, ExecutorService):
        await wait_for(lambda: _all_finished(bus, 1), within=30, what="the verdict after the restart")
    (done,) = await finished_events(bus)
    assert done.payload.outcome is RemediationOutcome.SUCCEEDED
    assert done.payload.verified_run_attempt == 2 and done.causation_id == order.event_id
    assert len(run.attempts) == 2


@pytest.mark.parametrize(
    "body",
    [b"not json", b"{}", b'{"event_type": "GateDecided"}', b"\x00\xff" * 40],
    ids=["garbage", "empty-object", "half-an-event", "binary"],
)
async def test_malformed_wait_messages_are_dead_lettered_not_retried(
    bus: Bus, slow_ci: Callable[[float], Any], body: bytes
) -> None:
    ci: Sandbox = await slow_ci(0.2)
    settings = load_settings(github_api_url=ci.url, verify_timeout_seconds=5)
    async with executor_host(bus, ci, settings):
        stream, subject = f"{bus.topology.stream}_VERIFY", f"{bus.topology.prefix}.verify.ci"
        await bus.js.publish(subject, body, stream=stream)
        await wait_until_caught_up(bus, "executor-ci-wait", stream=stream, within=15)
    dlq = await bus.js.pull_subscribe(
        bus.topology.dlq_subject("executor-ci-wait"), stream=bus.topology.dlq_stream
    )
    try:
        (dead,) = await dlq.fetch(1, timeout=10)
    finally:
        await dlq.unsubscribe()
    assert dead.data == body
    assert (dead.headers or {}).get("Medic-Num-Delivered") == "1"  # permanent: never retried
    assert await count(bus, "RemediationFinished") == 0


async def test_an_event_that_orders_nothing_is_refused_by_the_wait(
    bus: Bus, slow_ci: Callable[[float], Any]
) -> None:
    from medic.events import GateOutcome

    ci: Sandbox = await slow_ci(0.2)
    settings = load_settings(github_api_url=ci.url, verify_timeout_seconds=5)
    run = ci.github.add_failed_run(REPO, "flaky_test")
    order = auto_order(REPO, run.id, rerun())
    held = order.model_copy(
        update={"payload": order.payload.model_copy(update={"outcome": GateOutcome.REQUIRE_APPROVAL})}
    )
    async with executor_host(bus, ci, settings):
        stream, subject = f"{bus.topology.stream}_VERIFY", f"{bus.topology.prefix}.verify.ci"
        await bus.js.publish(subject, held.model_dump_json().encode(), stream=stream)
        await wait_until_caught_up(bus, "executor-ci-wait", stream=stream, within=15)
    assert len(run.attempts) == 1
    assert await count(bus, "RemediationFinished") == 0


def test_the_looks_back_off_to_ten_seconds_and_span_the_wait() -> None:
    assert [pause_before_look(n) for n in range(1, 9)] == [0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    assert looks_within(0) == 1
    for seconds in (0.1, 1.0, 30.0, 600.0, 3600.0):
        looks = looks_within(seconds)
        assert sum(pause_before_look(n) for n in range(1, looks)) >= seconds
        assert sum(pause_before_look(n) for n in range(1, looks - 1)) < seconds
    assert looks_within(600.0) < 80  # ten minutes of waiting costs GitHub few requests
    assert pause_before_look(10**6) == 10.0  # the millionth look neither overflows nor waits longer


async def test_the_wait_has_room_for_a_burst_of_waits(bus: Bus, slow_ci: Callable[[float], Any]) -> None:
    """A deferred message counts toward max_ack_pending until acked (nats-server: a nak with a
    delay keeps it pending), so the wait's consumer must allow far more than its handlers."""
    ci: Sandbox = await slow_ci(0.2)
    settings = load_settings(github_api_url=ci.url, verify_timeout_seconds=5)
    async with executor_host(bus, ci, settings):
        info = await bus.js.consumer_info(f"{bus.topology.stream}_VERIFY", "executor-ci-wait")
    assert info.config.max_ack_pending == MAX_WAITS >= 10_000


async def test_a_reloaded_verify_timeout_applies_to_waits_under_way(
    bus: Bus, slow_ci: Callable[[float], Any]
) -> None:
    """``verify_timeout_seconds`` is reloadable: the reloader hands the service new settings
    (``reload.apply_to``), and a wait already under way reads them at its next look."""
    ci: Sandbox = await slow_ci(3.0)
    settings = load_settings(github_api_url=ci.url, verify_timeout_seconds=1.0)
    run = ci.github.add_failed_run(REPO, "flaky_test")
    async with executor_host(bus, ci, settings) as service:
        await bus.publish(auto_order(REPO, run.id, rerun()))
        await wait_until_caught_up(bus, "executor", within=10)  # acted on; now waiting for CI
        service.settings = settings.model_copy(update={"verify_timeout_seconds": 60.0})
        await wait_for(lambda: _all_finished(bus, 1), within=30, what="the verdict")
    (done,) = await finished_events(bus)
    assert done.payload.outcome is RemediationOutcome.SUCCEEDED, done.payload.detail
    assert done.payload.verified_run_attempt == 2


class CountingLooks(TwoHandlers):
    looks = 0

    async def _look(
        self, order: Any, *, waited_seconds: float, within_seconds: float, last_look: bool
    ) -> bool:
        type(self).looks += 1
        return await super()._look(
            order, waited_seconds=waited_seconds, within_seconds=within_seconds, last_look=last_look
        )


async def test_looks_at_an_unchanged_run_cost_no_rate_limit(
    bus: Bus, slow_ci: Callable[[float], Any]
) -> None:
    """Each look is a conditional request: GitHub answers 304 for a run that has not changed,
    free of the rate limit, so a wait costs a request per change of the run, not per look."""
    ci: Sandbox = await slow_ci(6.0)  # in progress after 2 s, completed after 6 s
    settings = load_settings(github_api_url=ci.url, verify_timeout_seconds=60)
    run = ci.github.add_failed_run(REPO, "flaky_test")

    def charged() -> int:
        window = ci.github.budget.windows.get("t")
        return 0 if window is None else window.used

    before = charged()
    async with executor_host(bus, ci, settings, CountingLooks):
        await bus.publish(auto_order(REPO, run.id, rerun()))
        await wait_for(lambda: _all_finished(bus, 1), within=30, what="the verdict")
    (done,) = await finished_events(bus)
    assert done.payload.outcome is RemediationOutcome.SUCCEEDED, done.payload.detail
    looks, spent = CountingLooks.looks, charged() - before
    assert looks >= 5, looks  # 0, 0.25, 0.75, 1.75, 3.75 and 7.75 s after the re-run was sent
    # the action (the run read before acting, the re-run) and one full read per state the run was
    # seen in (queued, in progress, completed): not one per look
    assert spent <= 2 + 3 < 2 + looks, (spent, looks)


CHECK_RUNS = "GET /repos/{owner}/{repo}/commits/{ref}/check-runs"


def requests_by_route() -> dict[str, float]:
    """The client's requests so far by route, whatever their answer (the sandbox charges all but 304s)."""
    sent: dict[str, float] = {}
    for metric in REGISTRY.collect():
        if metric.name == "medic_github_requests":
            for sample in metric.samples:
                if sample.name.endswith("_total"):
                    route = sample.labels["method_route"]
                    sent[route] = sent.get(route, 0.0) + sample.value
    return sent


async def test_looks_at_a_fix_pull_requests_unchanged_checks_cost_no_rate_limit(
    bus: Bus, slow_ci: Callable[[float], Any]
) -> None:
    """A fix's looks at its pull request's checks are conditional requests too: a wait costs a
    charged read per change of the check runs (queued, in progress, completed), not one per look."""
    ci: Sandbox = await slow_ci(6.0)  # the pull request's check: in progress after 2 s, completed after 6 s
    settings = load_settings(github_api_url=ci.url, verify_timeout_seconds=60)
    sha = ci.github.git.seed(REPO, {"jest.config.js": JEST})
    run = ci.github.add_failed_run(REPO, "job_timeout", head_sha=sha)

    def charged() -> int:
        window = ci.github.budget.windows.get("t")
        return 0 if window is None else window.used

    before, sent_before, looks_before = charged(), requests_by_route(), CountingLooks.looks
    async with executor_host(bus, ci, settings, CountingLooks):
        await bus.publish(auto_order(REPO, run.id, SEED_FIX))
        await wait_for(lambda: _all_finished(bus, 1), within=30, what="the verdict")
    (done,) = await finished_events(bus)
    assert done.payload.outcome is RemediationOutcome.SUCCEEDED, done.payload.detail
    assert "checks passed" in done.payload.detail
    sent = {route: n - sent_before.get(route, 0.0) for route, n in requests_by_route().items()}
    looks, check_reads = CountingLooks.looks - looks_before, sent.get(CHECK_RUNS, 0.0)
    other_requests = sum(n for route, n in sent.items() if route != CHECK_RUNS)  # the action's, all charged
    charged_check_reads = charged() - before - other_requests
    assert looks >= 5 and check_reads == looks, (looks, check_reads)  # 0, 0.25, ... 7.75 s after the PR
    assert charged_check_reads <= 3 < looks, (charged_check_reads, looks)
