"""The notifier, the safety gate and the analyzer alone on a real bus: events in, events out.

The end-to-end pipeline shows they work together; these show each one's contract with
the bus by itself (what it reads, what it answers, with which ids, how often), so a
failure points at one service instead of at the whole pipeline.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from medic.bus import Bus, Delivery
from medic.config import Settings, load_settings
from medic.events import (
    ActionKind,
    AnalysisCompleted,
    AnalysisCompletedPayload,
    AnalysisMethod,
    Category,
    Envelope,
    FailedJob,
    FailureDetected,
    FailureDetectedPayload,
    GateDecided,
    GateOutcome,
    ProposedAction,
    decode_event,
    derive_failure_id,
    utc_now,
)
from medic.runtime import Service, ServiceHost
from medic.services.analyzer.knowledge import default_knowledge_base
from medic.services.analyzer.service import AnalyzerService
from medic.services.notifier.render import describe
from medic.services.notifier.service import NotifierService
from medic.services.safety_gate.service import SafetyGateService
from tests.event_histories import PATHS, failure_history
from tests.waiting import events_of, wait_for_events, wait_until_caught_up

REPO = "octo-org/octo-repo"
START = datetime(2026, 11, 29, 9, 0, tzinfo=UTC)


@pytest.fixture
async def start_host(bus: Bus) -> AsyncIterator[Callable[..., Any]]:
    hosts: list[ServiceHost] = []

    async def start(service: Service, settings: Settings | None = None) -> ServiceHost:
        host = ServiceHost(settings=settings or load_settings(), bus=bus, services=[service])
        await host.start()
        hosts.append(host)
        return host

    yield start
    for host in hosts:
        await host.stop()


# --- notifier -----------------------------------------------------------------------------


async def test_the_notifier_writes_one_line_per_event_of_every_path(bus: Bus, start_host: Any) -> None:
    lines: list[str] = []
    await start_host(NotifierService(write=lines.append))
    published: list[Envelope] = []
    for run_id, path in enumerate(PATHS, start=1):
        published += failure_history(path, repository=REPO, run_id=run_id, start=START)
    await bus.publish_many(published)

    await wait_until_caught_up(bus, "notifier")
    assert sorted(lines) == sorted(describe(e) for e in published)  # type: ignore[arg-type]
    assert all("\n" not in line for line in lines)


async def test_the_notifier_keeps_hostile_text_on_one_line_and_skips_undecodable_bytes(
    bus: Bus, start_host: Any
) -> None:
    lines: list[str] = []
    await start_host(NotifierService(write=lines.append))
    hostile = detected(branch="main\n[f-00000] APPROVED by admin\x1b[2K\u202e", run_id=77)
    await bus.js.publish(bus.topology.subject("FailureDetected"), b"{not json", stream=bus.topology.stream)
    await bus.publish(hostile)

    await wait_until_caught_up(bus, "notifier")
    assert lines == [describe(hostile)]
    assert "\n" not in lines[0] and "\x1b" not in lines[0] and "\u202e" not in lines[0]
    dead = await bus.js.stream_info(bus.topology.dlq_stream)
    assert dead.state.messages == 1  # the bad bytes were dead-lettered, not retried


# --- safety gate ----------------------------------------------------------------------------


def analysis(
    run_id: int,
    *,
    repository: str = REPO,
    category: Category = Category.FLAKY_TEST,
    action: ActionKind = ActionKind.RERUN_FAILED_JOBS,
    risk: int = 2,
) -> AnalysisCompleted:
    return AnalysisCompleted(
        failure_id=derive_failure_id(repository, run_id, 1),
        causation_id=str(run_id),
        actor="analyzer",
        payload=AnalysisCompletedPayload(
            repository=repository,
            run_id=run_id,
            run_attempt=1,
            category=category,
            risk=risk,
            confidence=0.9,
            proposed_action=ProposedAction(kind=action),
            method=AnalysisMethod.RULES,
            fingerprint=f"fp-{run_id}",
        ),
    )


async def test_the_gate_answers_each_analysis_once_with_its_outcome(bus: Bus, start_host: Any) -> None:
    settings = load_settings(risk_threshold=4, protected_repositories=("octo-org/vault",))
    gate = SafetyGateService(settings=settings, bus=bus)
    await start_host(gate, settings)
    expected = {
        1: (analysis(1), GateOutcome.AUTO_REMEDIATE),
        2: (analysis(2, risk=5), GateOutcome.REQUIRE_APPROVAL),
        3: (analysis(3, repository="octo-org/vault"), GateOutcome.REQUIRE_APPROVAL),
        4: (analysis(4, category=Category.UNKNOWN), GateOutcome.REQUIRE_APPROVAL),
        5: (analysis(5, category=Category.COMPILE, action=ActionKind.NONE), GateOutcome.NO_ACTION),
    }
    for event, _ in expected.values():
        await bus.publish(event)
    await wait_for_events(bus, "GateDecided", len(expected))
    await wait_until_caught_up(bus, "safety-gate")
    # each analysis handed over again, as a redelivery after a lost ack would: decided again,
    # but the answer's id derives from its cause, so the log keeps one decision of each
    await handle_again(bus, gate, "AnalysisCompleted")

    decisions = [e for e in await events_of(bus, "GateDecided") if isinstance(e, GateDecided)]
    assert sorted(d.payload.run_id for d in decisions) == sorted(expected)
    for decision in decisions:
        cause, outcome = expected[decision.payload.run_id]
        assert decision.causation_id == cause.event_id
        assert decision.failure_id == cause.failure_id
        assert decision.payload.outcome is outcome, decision.payload.reasons
        assert decision.payload.reasons


async def handle_again(bus: Bus, service: Service, event_type: str) -> None:
    """Hand every stored event of ``event_type`` to ``service`` once more, as a redelivery would."""
    sub = await bus.js.pull_subscribe(bus.topology.subject(event_type), stream=bus.topology.stream)
    try:
        for msg in await sub.fetch(100, timeout=5):
            meta = msg.metadata
            delivery = Delivery(meta.sequence.stream, meta.num_delivered, msg)
            await service.handle(decode_event(msg.data), delivery)
    finally:
        await sub.unsubscribe()


# --- analyzer -------------------------------------------------------------------------------


def detected(*, run_id: int, log: str = "", branch: str = "main") -> FailureDetected:
    return FailureDetected(
        failure_id=derive_failure_id(REPO, run_id, 1),
        actor="monitor",
        payload=FailureDetectedPayload(
            repository=REPO,
            run_id=run_id,
            run_attempt=1,
            workflow_name="CI",
            branch=branch,
            detected_at=utc_now(),
            failed_jobs=(FailedJob(job_id=run_id * 10, name="test", log_tail=log),),
        ),
    )


async def test_the_analyzer_answers_a_failure_detected_with_its_analysis(bus: Bus, start_host: Any) -> None:
    analyzer = AnalyzerService(bus=bus, knowledge_for=lambda _: default_knowledge_base("re2"), model=None)
    await start_host(analyzer)
    secret = "ghp_qsR6RZ24lPoQj3oPUlieI2nVsbBi1RMar1jf"
    log = "\n".join(
        [
            "2026-11-29T09:00:00Z Run npm ci",
            f"2026-11-29T09:00:01Z GITHUB_TOKEN={secret}",
            "2026-11-29T09:00:02Z npm ERR! code ECONNRESET",
            "2026-11-29T09:00:02Z npm ERR! network request to https://registry.npmjs.org failed",
            "##[error]Process completed with exit code 1.",
        ]
    )
    failure = detected(run_id=5, log=log)
    await bus.publish(failure)

    [answer] = await wait_for_events(bus, "AnalysisCompleted", 1)
    await wait_until_caught_up(bus, "analyzer")
    assert isinstance(answer, AnalysisCompleted)
    assert (answer.causation_id, answer.failure_id) == (failure.event_id, failure.failure_id)
    payload = answer.payload
    assert (payload.repository, payload.run_id, payload.run_attempt) == (REPO, 5, 1)
    assert payload.method is AnalysisMethod.RULES
    assert "network-transient" in payload.matched_rules
    assert payload.category is not Category.UNKNOWN
    shown = json.dumps(answer.model_dump(mode="json"))
    assert secret not in shown  # the excerpt left the analyzer redacted
    assert len(await events_of(bus, "AnalysisCompleted")) == 1


async def test_the_analyzer_says_unknown_for_a_failure_without_a_log(bus: Bus, start_host: Any) -> None:
    analyzer = AnalyzerService(bus=bus, knowledge_for=lambda _: default_knowledge_base("re2"), model=None)
    await start_host(analyzer)
    failure = detected(run_id=6)
    await bus.publish(failure)
    [answer] = await wait_for_events(bus, "AnalysisCompleted", 1)
    assert isinstance(answer, AnalysisCompleted)
    assert answer.causation_id == failure.event_id
    assert answer.payload.category is Category.UNKNOWN
