"""Regressions of issue 9, defects 3 and 4: crafted input never drops an event or answers 500.

Each test replays what the attack pass did on the running system: a NUL in a job log, ids
past ``bigint``, a commit message over 1 MB, a lone surrogate, JSON nested 5,000 deep, and
an event on the stream the projector cannot store.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from typer.testing import CliRunner

from medic.bus import Bus
from medic.events import derive_failure_id
from medic.sandbox.github_store import bytes_source
from medic.services.monitor.intake import COMMIT_MESSAGE_BYTES
from medic.services.projector.chain import verify_chain
from medic.services.projector.commands import audit_app
from medic.services.projector.replay import replay
from medic.services.projector.service import ProjectorService
from tests.attacks.tally import TALLY
from tests.integration.monitor_support import (
    SECRET,
    monitor_world,
    post_webhook,
    run_completed_payload,
    wait_for_detected,
)

NATS_MAX_PAYLOAD = 1024 * 1024
WEBHOOK_ONLY = {"catch_up_polling": False}
"""What the webhook alone does: a catch-up poll would also find the sandbox's real run."""


@pytest.fixture
async def projector(bus: Bus, database_url: str, db_schema: str) -> AsyncIterator[ProjectorService]:
    """The projector's service on its durable consumer, as ``medic service projector`` runs it."""
    await bus.ensure_streams()
    svc = ProjectorService(database_url=database_url, schema=db_schema, pool_size=2)
    await svc.start()
    sub = bus.subscribe(
        "projector", svc.handle, concurrency=1, batch_handler=svc.handle_batch, decode=svc.decoder()
    )
    await sub.start()
    yield svc
    await sub.stop()
    await svc.stop()


async def audit_rows(svc: ProjectorService, failure_id: str, *, expect: int, within: float = 15) -> list[Any]:
    deadline = asyncio.get_running_loop().time() + within
    while True:
        rows = await svc.pool.fetch(
            "SELECT action, outcome, details FROM audit_log WHERE failure_id = $1 ORDER BY id", failure_id
        )
        if len(rows) >= expect or asyncio.get_running_loop().time() > deadline:
            return rows
        await asyncio.sleep(0.1)


async def dead_letters(bus: Bus) -> int:
    try:
        info = await bus.js.stream_info(bus.topology.dlq_stream)
    except Exception:
        return 0
    return int(info.state.messages)


async def test_a_nul_byte_in_a_job_log_keeps_the_detection_in_the_audit_trail(
    bus: Bus, projector: ProjectorService
) -> None:
    log = b"10:00:00Z compiling\n\x00\x00binary junk\x00\n##[error]Process completed with exit code 1"
    async with monitor_world(bus) as world:
        run = world.sandbox.add_failed_run("acme/nul", "unit_test_assertion", log=bytes_source(log))
        url = await world.serve(await world.monitor(**WEBHOOK_ONLY))
        response = await post_webhook(url, "workflow_run", run_completed_payload(world, run))
        assert response.status_code == 202
        [event] = await wait_for_detected(bus, 1)
    assert "\x00" not in event.payload.failed_jobs[0].log_tail
    rows = await audit_rows(projector, event.failure_id, expect=1)
    assert [r["action"] for r in rows] == ["FailureDetected"]
    excerpt = rows[0]["details"]["payload"]["failed_jobs"][0]["log_excerpt"]
    assert "binary junk" in excerpt and "\ufffd" in excerpt
    assert await dead_letters(bus) == 0


def _run_payload(world: Any, run: Any, **workflow_run: Any) -> dict[str, Any]:
    payload = run_completed_payload(world, run)
    payload["workflow_run"].update(workflow_run)
    return payload


@pytest.mark.parametrize(
    "crafted",
    [
        {"id": 2**63},
        {"id": -5},
        {"id": 0},
        {"run_attempt": -1},
        {"run_attempt": 0},
        {"run_attempt": 2**31},
        {"pull_requests": [{"number": 2**63}]},
    ],
    ids=["run-2^63", "run-negative", "run-0", "attempt-negative", "attempt-0", "attempt-2^31", "pr-2^63"],
)
async def test_signed_webhooks_with_ids_out_of_range_are_refused(bus: Bus, crafted: dict[str, Any]) -> None:
    async with monitor_world(bus) as world:
        run = world.sandbox.add_failed_run("acme/ids", "unit_test_assertion")
        url = await world.serve(await world.monitor(**WEBHOOK_ONLY))
        payload = _run_payload(world, run, **crafted)
        response = await post_webhook(url, "workflow_run", payload)
        unsigned = await _post_unsigned(url, json.dumps(payload).encode())
        TALLY.add(
            "crafted webhooks (signed, unsigned)",
            tried=2,
            server_errors=sum(r.status_code >= 500 for r in (response, unsigned)),
            wrongly_accepted=sum(r.is_success for r in (response, unsigned)),
        )
        assert response.status_code == 400, response.text
        assert unsigned.status_code == 401
        assert await wait_for_detected(bus, 1, within=1.0) == []


async def _post_unsigned(url: str, body: bytes) -> Any:
    import httpx

    headers = {"X-GitHub-Event": "workflow_run", "Content-Type": "application/json"}
    async with httpx.AsyncClient() as client:
        return await client.post(f"{url}/webhooks/github", content=body, headers=headers)


async def test_a_job_webhook_with_a_run_id_past_bigint_is_refused(bus: Bus) -> None:
    async with monitor_world(bus) as world:
        url = await world.serve(await world.monitor(**WEBHOOK_ONLY))
        payload = {
            "action": "completed",
            "workflow_job": {"id": 1, "run_id": 2**63, "run_attempt": 1, "conclusion": "failure"},
            "repository": {"full_name": "acme/ids"},
        }
        response = await post_webhook(url, "workflow_job", payload)
        assert response.status_code == 400


async def test_a_commit_message_over_one_megabyte_is_truncated_and_the_failure_still_detected(
    bus: Bus,
) -> None:
    async with monitor_world(bus) as world:
        run = world.sandbox.add_failed_run("acme/huge", "unit_test_assertion")
        run.commit_message = "fix: everything\n" + "A" * (1536 * 1024) + "\nthe end"
        url = await world.serve(await world.monitor(**WEBHOOK_ONLY))
        response = await post_webhook(url, "workflow_run", run_completed_payload(world, run))
        assert response.status_code == 202, response.text
        [event] = await wait_for_detected(bus, 1)
    message = event.payload.commit_message
    assert message.startswith("fix: everything\nAAAA")
    assert "truncated by ci-medic" in message
    assert len(message.encode()) <= COMMIT_MESSAGE_BYTES
    assert len(event.model_dump_json().encode()) < NATS_MAX_PAYLOAD


async def test_a_lone_surrogate_in_a_signed_webhook_is_cleaned_and_the_failure_kept(bus: Bus) -> None:
    async with monitor_world(bus) as world:
        run = world.sandbox.add_failed_run("acme/surrogate", "unit_test_assertion")
        payload = run_completed_payload(world, run)
        payload["workflow_run"]["head_commit"]["message"] = "half a pair: \ud800 and a NUL: \x00"
        payload["workflow_run"]["head_branch"] = "feature/\udfff"
        url = await world.serve(await world.monitor(**WEBHOOK_ONLY))
        response = await post_webhook(url, "workflow_run", payload)
        assert response.status_code == 202, response.text
        [event] = await wait_for_detected(bus, 1)
    assert event.payload.commit_message == "half a pair: \ufffd and a NUL: \ufffd"
    assert event.payload.branch == "feature/\ufffd"


async def test_json_nested_five_thousand_deep_is_a_400_signed_or_not(bus: Bus) -> None:
    import httpx

    from medic.services.monitor.signature import sign

    body = ("[" * 5000 + "]" * 5000).encode()
    async with monitor_world(bus) as world:
        url = await world.serve(await world.monitor(**WEBHOOK_ONLY))
        async with httpx.AsyncClient() as client:
            headers = {"X-GitHub-Event": "workflow_run", "Content-Type": "application/json"}
            signed = await client.post(
                f"{url}/webhooks/github",
                content=body,
                headers=headers | {"X-Hub-Signature-256": sign(body, SECRET)},
            )
            unsigned = await client.post(f"{url}/webhooks/github", content=body, headers=headers)
    assert signed.status_code == 400
    assert unsigned.status_code == 401


async def test_an_event_the_projector_cannot_store_is_recorded_and_verify_reports_it(
    bus: Bus,
    projector: ProjectorService,
    nats_url: str,
    database_url: str,
    db_schema: str,
    scratch_schema: str,
) -> None:
    """A FailureDetected from a publisher that skipped the intake (run id past ``bigint``) and
    bytes that are no event at all: both end in the audit trail with their reason, not in a DLQ."""
    failure_id = derive_failure_id("acme/foreign", 2**63, 1)
    foreign = {
        "event_id": "01936f5e-0000-7000-8000-000000000001",
        "event_type": "FailureDetected",
        "schema_version": 1,
        "occurred_at": "2026-11-25T10:00:00Z",
        "failure_id": failure_id,
        "actor": "monitor",
        "payload": {
            "repository": "acme/foreign",
            "run_id": 2**63,
            "run_attempt": 1,
            "workflow_name": "CI",
            "detected_at": "2026-11-25T10:00:00Z",
        },
    }
    subject = bus.topology.subject("FailureDetected")
    await bus.js.publish(subject, json.dumps(foreign).encode(), stream=bus.topology.stream)
    await bus.js.publish(subject, b"\x00not an event\xff", stream=bus.topology.stream)

    rows = await audit_rows(projector, failure_id, expect=1)
    assert [(r["action"], r["outcome"]) for r in rows] == [("EventUnapplied", "unapplied")]
    details = rows[0]["details"]
    assert "out of int64 range" in details["reason"] and details["event_type"] == "FailureDetected"
    deadline = asyncio.get_running_loop().time() + 15
    while await projector.pool.fetchval("SELECT count(*) FROM audit_log") < 2:
        assert asyncio.get_running_loop().time() < deadline, "the unreadable message was not recorded"
        await asyncio.sleep(0.1)
    assert await dead_letters(bus) == 0

    result = await verify_chain(projector.pool)
    assert result.ok
    assert sorted(u.event_type for u in result.unapplied) == ["FailureDetected", "Unreadable"]

    env = {
        "NATS_URL": nats_url,
        "DATABASE_URL": database_url,
        "MEDIC_DB_SCHEMA": db_schema,
        "MEDIC_STREAM_NAME": bus.topology.stream,
        "MEDIC_SUBJECT_PREFIX": bus.topology.prefix,
    }
    outcome = await asyncio.to_thread(CliRunner().invoke, audit_app, ["verify"], env=env)
    assert outcome.exit_code == 0, outcome.output
    assert "2 event(s) recorded as unapplied" in outcome.output
    assert "01936f5e-0000-7000-8000-000000000001" in outcome.output

    replayed = await replay(bus, database_url, scratch_schema, live_schema=db_schema)
    assert replayed.equal, (replayed.digests, replayed.live_digests)
