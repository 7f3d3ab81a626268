"""The safety policy on a real bus and real JetStream key-value: budgets under a burst shared by
two gate replicas, the breaker opening and its reset over HTTP, the kill switch, dry-run with the
executor beside it against the sandbox GitHub, and an incident hold across three repositories."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from medic.bus import Bucket, Bus
from medic.config import Settings, load_settings
from medic.events import (
    ActionKind,
    AnalysisCompleted,
    AnalysisCompletedPayload,
    AnalysisMethod,
    Category,
    GateDecided,
    GateOutcome,
    PolicyChange,
    PolicyChanged,
    ProposedAction,
    RemediationFinished,
    RemediationFinishedPayload,
    RemediationOutcome,
    decode_event,
    derive_failure_id,
)
from medic.github.client import GitHubClient
from medic.runtime import HttpServer, ServiceHost
from medic.sandbox.github import create_sandbox_github
from medic.services.executor.service import ExecutorService
from medic.services.safety_gate.policy import KILL_REASON
from medic.services.safety_gate.service import SafetyGateService
from tests.waiting import wait_until_caught_up

REPO = "octo-org/octo-repo"
_run_ids = iter(range(1000, 10**6))


def analysis(
    repository: str = REPO, *, category: Category = Category.FLAKY_TEST, **extra: Any
) -> AnalysisCompleted:
    run_id = extra.pop("run_id", next(_run_ids))
    return AnalysisCompleted(
        failure_id=derive_failure_id(repository, run_id, 1),
        actor="analyzer",
        payload=AnalysisCompletedPayload(
            repository=repository,
            run_id=run_id,
            run_attempt=1,
            category=category,
            risk=1,
            confidence=0.95,
            proposed_action=ProposedAction(kind=ActionKind.RERUN_FAILED_JOBS),
            method=AnalysisMethod.RULES,
            fingerprint=extra.pop("fingerprint", "flaky-abc"),
            **extra,
        ),
    )


async def stored(bus: Bus, event_type: str) -> list[Any]:
    """Every event of one type in the stream, in order."""
    sub = await bus.js.pull_subscribe(bus.topology.subject(event_type), stream=bus.topology.stream)
    found: list[Any] = []
    try:
        while True:
            try:
                batch = await sub.fetch(500, timeout=0.5)
            except TimeoutError:
                return found
            for msg in batch:
                found.append(decode_event(msg.data))
                await msg.ack()
    finally:
        with contextlib.suppress(Exception):
            await sub.unsubscribe()


async def until(check: Callable[[], Any], *, within: float = 20.0) -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        value = await check()
        if value or loop.time() > deadline:
            return value
        await asyncio.sleep(0.1)


async def decisions(bus: Bus, count: int) -> list[GateDecided]:
    async def enough() -> list[GateDecided] | None:
        found = await stored(bus, "GateDecided")
        return found if len(found) >= count else None

    found = await until(enough)
    assert found is not None, f"fewer than {count} GateDecided"
    return list(found)


@dataclass
class Gates:
    hosts: list[ServiceHost]
    http: httpx.AsyncClient
    url: str


@pytest.fixture
async def gates(bus: Bus, request: pytest.FixtureRequest) -> AsyncIterator[Callable[..., Any]]:
    started: list[tuple[ServiceHost, HttpServer]] = []

    async def start(settings: Settings, replicas: int = 1) -> Gates:
        for _ in range(replicas):
            host = ServiceHost(
                settings=settings, bus=bus, services=[SafetyGateService(settings=settings, bus=bus)]
            )
            server = HttpServer(host.app())
            await server.start()
            await host.start()
            started.append((host, server))
        return Gates([h for h, _ in started], httpx.AsyncClient(timeout=10), started[0][1].url)

    yield start
    for host, server in started:
        await host.stop()
        await server.stop()
    for which in (Bucket.POLICY, Bucket.POLICY_BUDGETS, Bucket.REMEDIATIONS):
        with contextlib.suppress(Exception):
            await bus.js.delete_key_value(bus.topology.bucket(which))


async def test_a_burst_of_200_flaky_failures_in_one_repository_stays_within_budget_across_two_replicas(
    bus: Bus, gates: Callable[..., Any]
) -> None:
    settings = load_settings(repository_hourly_budget=7, organisation_hourly_budget=100)
    await gates(settings, replicas=2)
    await bus.publish_many([analysis() for _ in range(200)])
    found = await decisions(bus, 200)
    auto = [d for d in found if d.payload.outcome is GateOutcome.AUTO_REMEDIATE]
    waiting = [d for d in found if d.payload.outcome is GateOutcome.REQUIRE_APPROVAL]
    assert len(auto) == 7
    assert len(waiting) == 193
    assert all(
        f"budget: 7 of 7 automatic remediations in {REPO} this hour are used" in d.payload.reasons
        for d in waiting
    )


async def test_the_organisation_budget_is_shared_by_its_repositories(
    bus: Bus, gates: Callable[..., Any]
) -> None:
    settings = load_settings(
        repository_hourly_budget=5,
        organisation_hourly_budget=6,
        organisation_configs={"big-org": {"organisation_hourly_budget": 100}},
    )
    await gates(settings, replicas=2)
    events = [analysis(f"octo-org/r{i % 4}") for i in range(40)] + [
        analysis(f"big-org/r{i % 4}") for i in range(40)
    ]
    await bus.publish_many(events)
    found = await decisions(bus, 80)
    auto = [d.payload.repository for d in found if d.payload.outcome is GateOutcome.AUTO_REMEDIATE]
    assert sum(r.startswith("octo-org/") for r in auto) == 6
    assert sum(r.startswith("big-org/") for r in auto) == 20  # 4 repositories x 5, the org override is 100


def finished(decided: GateDecided, outcome: RemediationOutcome) -> RemediationFinished:
    return RemediationFinished.answering(
        decided,
        actor="executor",
        payload=RemediationFinishedPayload(
            action=decided.payload.action,
            repository=decided.payload.repository,
            run_id=decided.payload.run_id,
            outcome=outcome,
            detail="attempt 2 concluded failure",
        ),
    )


async def test_the_breaker_opens_after_n_red_remediations_and_a_person_resets_it_over_http(
    bus: Bus, gates: Callable[..., Any]
) -> None:
    g = await gates(load_settings(breaker_threshold=2))
    await bus.publish(analysis())
    await bus.publish(analysis())
    first_two = await decisions(bus, 2)
    assert all(d.payload.outcome is GateOutcome.AUTO_REMEDIATE for d in first_two)
    for decided in first_two:
        red = finished(decided, RemediationOutcome.FAILED)
        await bus.publish(red)
        await bus.publish(red)  # redelivered: counted once
    opened = await until(lambda: stored(bus, "PolicyChanged"))
    assert [e.payload.change for e in opened] == [PolicyChange.BREAKER_OPENED]
    assert opened[0].payload.scope == REPO
    await bus.publish(analysis())
    third = (await decisions(bus, 3))[-1]
    assert third.payload.outcome is GateOutcome.REQUIRE_APPROVAL
    assert any("circuit breaker is open" in r for r in third.payload.reasons)
    status = (await g.http.get(f"{g.url}/api/policy")).json()
    assert [b["repository"] for b in status["open_breakers"]] == [REPO]

    reset = await g.http.post(
        f"{g.url}/api/policy/breakers/{REPO}/reset", json={"by": "alice", "reason": "fixed"}
    )
    assert reset.status_code == 200, reset.text
    assert reset.json()["payload"]["change"] == "breaker_reset"
    again = await g.http.post(f"{g.url}/api/policy/breakers/{REPO}/reset", json={"by": "alice"})
    assert again.status_code == 200 and again.json()["event_id"] == reset.json()["event_id"]
    changes = await until(lambda: _changes(bus, 2))
    assert [e.payload.change for e in changes] == [PolicyChange.BREAKER_OPENED, PolicyChange.BREAKER_RESET]
    await bus.publish(analysis())
    assert (await decisions(bus, 4))[-1].payload.outcome is GateOutcome.AUTO_REMEDIATE
    unknown = await g.http.post(f"{g.url}/api/policy/breakers/octo-org/never/reset", json={"by": "alice"})
    assert unknown.status_code == 404


async def _changes(bus: Bus, count: int) -> list[PolicyChanged] | None:
    found = await stored(bus, "PolicyChanged")
    return found if len(found) >= count else None


async def test_a_green_verdict_or_an_approved_remediation_does_not_move_the_breaker(
    bus: Bus, gates: Callable[..., Any]
) -> None:
    await gates(load_settings(breaker_threshold=1))
    await bus.publish(analysis())
    (decided,) = await decisions(bus, 1)
    await bus.publish(finished(decided, RemediationOutcome.SUCCEEDED))
    stranger = analysis()  # never let through by the gate: a person approved it
    approved = GateDecided.answering(stranger, actor="approval", payload=decided.payload)
    await bus.publish(finished(approved, RemediationOutcome.FAILED))
    await wait_until_caught_up(bus, "safety-gate")  # the gate has read both outcomes
    assert await stored(bus, "PolicyChanged") == []


async def test_the_kill_switch_stops_every_automatic_action_until_it_is_turned_off(
    bus: Bus, gates: Callable[..., Any]
) -> None:
    g = await gates(load_settings(api_token="read-only", api_tokens={"alice": {"token": "s3cret"}}))
    refused = await g.http.post(f"{g.url}/api/policy/kill-switch", json={"on": True, "by": "mallory"})
    assert refused.status_code == 401
    read_only = {"authorization": "Bearer read-only"}  # the shared token reads; it names nobody
    refused = await g.http.post(
        f"{g.url}/api/policy/kill-switch", json={"on": True, "by": "mallory"}, headers=read_only
    )
    assert refused.status_code == 403
    headers = {"authorization": "Bearer s3cret"}
    on = await g.http.post(
        f"{g.url}/api/policy/kill-switch",
        json={"on": True, "by": "alice", "reason": "bad deploy"},
        headers=headers,
    )
    assert on.status_code == 200 and on.json()["payload"]["change"] == "kill_switch_on"
    await bus.publish_many([analysis(f"octo-org/r{i}") for i in range(5)])
    killed = await decisions(bus, 5)
    assert all(
        d.payload.outcome is GateOutcome.REQUIRE_APPROVAL and KILL_REASON in d.payload.reasons for d in killed
    )
    assert (await g.http.get(f"{g.url}/api/policy", headers=headers)).json()["kill_switch"] is True
    off = await g.http.post(
        f"{g.url}/api/policy/kill-switch", json={"on": False, "by": "alice"}, headers=headers
    )
    assert off.json()["payload"]["change"] == "kill_switch_off"
    await bus.publish(analysis())
    assert (await decisions(bus, 6))[-1].payload.outcome is GateOutcome.AUTO_REMEDIATE
    changes = await until(lambda: _changes(bus, 2))
    assert [c.payload.changed_by for c in changes] == ["token:alice", "token:alice"]  # verified, not typed


async def test_dry_run_decides_and_records_as_usual_but_the_executor_runs_nothing(
    bus: Bus, gates: Callable[..., Any]
) -> None:
    sandbox = create_sandbox_github(webhook_url=None, webhook_secret="unused", rerun_delay_seconds=0.1)
    server = HttpServer(sandbox.app)
    await server.start()
    github = GitHubClient(base_url=server.url, token="t", max_retry_seconds=2)
    settings = load_settings(github_api_url=server.url, verify_timeout_seconds=3)
    g = await gates(settings)
    executor = ExecutorService(settings=settings, bus=bus, github=github)
    host = ServiceHost(settings=settings, bus=bus, services=[executor])
    await host.start()
    try:
        on = await g.http.post(f"{g.url}/api/policy/dry-run", json={"on": True, "by": "alice"})
        assert on.status_code == 200
        run = sandbox.add_failed_run(REPO, "flaky_test")
        await bus.publish(analysis(run_id=run.id))
        (decided,) = await decisions(bus, 1)
        assert decided.payload.outcome is GateOutcome.AUTO_REMEDIATE and decided.payload.dry_run
        await wait_until_caught_up(bus, "executor")  # the executor has handled the dry-run decision
        assert (await github.get_run(REPO, run.id)).run_attempt == 1
        assert await stored(bus, "RemediationStarted") == []
    finally:
        await host.stop()
        await sandbox.drain()
        await github.aclose()
        await server.stop()


async def test_an_incident_across_three_repositories_holds_re_runs_until_a_person_lifts_it(
    bus: Bus, gates: Callable[..., Any]
) -> None:
    g = await gates(load_settings(incident_repositories=3, incident_window_minutes=5))
    infra = {"category": Category.INFRASTRUCTURE, "fingerprint": "runner-lost-7f3a"}
    for repo in ("octo-org/one", "octo-org/two"):
        await bus.publish(analysis(repo, **infra))
        await decisions(bus, 1 if repo.endswith("one") else 2)
    await bus.publish(analysis("other-org/three", **infra))
    found = await decisions(bus, 3)
    assert [d.payload.outcome for d in found[:2]] == [GateOutcome.AUTO_REMEDIATE] * 2
    assert found[2].payload.outcome is GateOutcome.REQUIRE_APPROVAL
    assert any(
        r.startswith("incident hold: the same infrastructure failure hit 3 repositories")
        for r in found[2].payload.reasons
    )
    started = await until(lambda: stored(bus, "PolicyChanged"))
    assert started[0].payload.change is PolicyChange.HOLD_STARTED
    assert started[0].payload.repositories == ("octo-org/one", "octo-org/two", "other-org/three")
    await bus.publish(analysis("octo-org/one", **infra))
    await bus.publish(analysis("octo-org/four"))  # a different cause is not held
    later = await decisions(bus, 5)
    by_repo = {d.payload.repository: d.payload.outcome for d in later[3:]}
    assert by_repo == {
        "octo-org/one": GateOutcome.REQUIRE_APPROVAL,
        "octo-org/four": GateOutcome.AUTO_REMEDIATE,
    }
    assert [h["fingerprint"] for h in (await g.http.get(f"{g.url}/api/policy")).json()["holds"]] == [
        "runner-lost-7f3a"
    ]

    lifted = await g.http.post(f"{g.url}/api/policy/holds/runner-lost-7f3a/lift", json={"by": "bob"})
    assert lifted.status_code == 200 and lifted.json()["payload"]["change"] == "hold_lifted"
    await bus.publish(analysis("octo-org/two", **infra))
    assert (await decisions(bus, 6))[-1].payload.outcome is GateOutcome.AUTO_REMEDIATE


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("/api/policy/kill-switch", {"on": "maybe", "by": "a"}, 422),
        ("/api/policy/kill-switch", {"on": True}, 422),
        ("/api/policy/kill-switch", {"on": True, "by": "a", "extra": 1}, 422),
        ("/api/policy/dry-run", {"on": True, "by": "x" * 101}, 422),
        ("/api/policy/breakers/octo-org/a%20b/reset", {"by": "a"}, 400),
        ("/api/policy/holds/..%2F..%2Fetc/lift", {"by": "a"}, 404),
        ("/api/policy/holds/nope/lift", {"by": "a"}, 404),
    ],
)
async def test_malformed_policy_commands_are_refused(
    bus: Bus, gates: Callable[..., Any], path: str, body: dict[str, Any], status: int
) -> None:
    g = await gates(load_settings())
    response = await g.http.post(f"{g.url}{path}", json=body)
    assert response.status_code == status, response.text
    assert await stored(bus, "PolicyChanged") == []


async def test_medic_policy_commands_drive_the_api_and_report_what_was_recorded(
    bus: Bus, gates: Callable[..., Any]
) -> None:
    from typer.testing import CliRunner

    from medic.services.cli import app

    g = await gates(load_settings(breaker_threshold=1))
    runner = CliRunner()

    async def medic(*args: str) -> Any:
        return await asyncio.to_thread(runner.invoke, app, ["policy", *args, "--url", g.url])

    killed = await medic("kill", "on", "--by", "carol", "--reason", "incident 42")
    assert killed.exit_code == 0, killed.output
    assert "kill_switch_on for global by carol" in killed.output
    shown = await medic("status")
    assert shown.exit_code == 0 and '"kill_switch": true' in shown.output
    assert (await medic("kill", "off", "--by", "carol")).exit_code == 0
    assert (await medic("dry-run", "maybe")).exit_code == 2
    assert (await medic("reset", "not a repo")).exit_code == 2
    missing = await medic("reset", "octo-org/never-opened", "--by", "carol")
    assert missing.exit_code == 1 and "no open circuit breaker" in missing.output

    await bus.publish(analysis())
    (decided,) = await decisions(bus, 1)
    await bus.publish(finished(decided, RemediationOutcome.FAILED))
    await until(lambda: _changes(bus, 3))
    reset = await medic("reset", REPO, "--by", "carol")
    assert reset.exit_code == 0 and f"breaker_reset for {REPO} by carol" in reset.output
    unreachable = await asyncio.to_thread(
        runner.invoke, app, ["policy", "status", "--url", "http://127.0.0.1:9"]
    )
    assert unreachable.exit_code == 2


async def test_a_reloaded_configuration_reaches_the_next_decision(
    bus: Bus, gates: Callable[..., Any]
) -> None:
    from medic.reload import apply_to

    g = await gates(load_settings())
    apply_to(g.hosts[0].services)(load_settings(kill_switch=True, api_token="new"))
    await bus.publish(analysis())
    (decided,) = await decisions(bus, 1)
    assert KILL_REASON in decided.payload.reasons
    refused = await g.http.post(f"{g.url}/api/policy/dry-run", json={"on": True, "by": "a"})
    assert refused.status_code == 401  # the reloaded token is asked for at once
    assert (await g.http.get(f"{g.url}/api/policy")).json()["configured"]["kill_switch"] is True


async def test_an_unreadable_policy_record_is_replaced_by_compare_and_set_not_trusted(
    bus: Bus, gates: Callable[..., Any]
) -> None:
    g = await gates(load_settings())
    kv = await bus.js.key_value(bus.topology.bucket(Bucket.POLICY))
    await kv.put("switches", b'{"kill_switch": "definitely"')
    await bus.publish(analysis())
    (decided,) = await decisions(bus, 1)
    assert decided.payload.outcome is GateOutcome.AUTO_REMEDIATE  # garbage is no switch at all
    on = await g.http.post(f"{g.url}/api/policy/kill-switch", json={"on": True, "by": "alice"})
    assert on.status_code == 200
    assert (await g.http.get(f"{g.url}/api/policy")).json()["kill_switch"] is True
