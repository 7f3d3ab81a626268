"""The fault suite (``make chaos``): a burst of simulated failures while the deployment is hurt.

Every service runs as its own ``medic service`` process. During the burst, in turn: each
service is SIGKILLed and restarted, nats-server is restarted, PostgreSQL is stopped for a
while, and the sandbox GitHub answers 5xx and then rate limits. Afterwards:

- every failure the sandbox produced reaches exactly one terminal state (approvals expire
  quickly here, so "waiting for a person" ends too);
- no remediation was executed twice, counted at the sandbox GitHub (re-runs it received
  versus distinct failures the executor re-ran);
- ``medic audit replay`` rebuilds views equal to the live ones;
- the dead-letter stream is empty, or each entry's event is in the audit trail.

Sized by ``MEDIC_CHAOS_FAILURES`` (default 300; see the README for why not 1,000 in CI).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import asyncpg
import nats
import pytest

from medic.embedded import free_port
from medic.events import derive_failure_id
from medic.runtime import HttpServer
from medic.sandbox.github import create_sandbox_github
from medic.sandbox.openai import create_sandbox_model
from medic.sandbox.simulate import simulate_in_batches
from tests.attacks.tally import TALLY
from tests.chaos.deployment import MEDIC, SERVICES, WEBHOOK_SECRET, Deployment, ServiceProcess

FAILURES = int(os.environ.get("MEDIC_CHAOS_FAILURES", "300"))
SETTLE_SECONDS = float(os.environ.get("MEDIC_CHAOS_SETTLE_SECONDS", "900"))
POSTGRES_DOWN_SECONDS = 20.0
TERMINAL = ("no_action", "rejected", "expired", "remediation_failed", "remediated")
TERMINAL_EVENTS = ("RemediationFinished", "ApprovalRejected", "ApprovalExpired")
FAILED = ("failure", "timed_out", "startup_failure")
RERUN_ACTIONS = ("rerun_failed_jobs", "rerun_workflow")


@pytest.mark.timeout(3000)
async def test_every_failure_settles_once_through_kills_restarts_and_outages(tmp_path: Path) -> None:
    deployment = Deployment(root=tmp_path, nats_port=free_port(), env={})
    nats_url = deployment.start_nats()
    database_url = deployment.start_postgres()
    for name in SERVICES:
        deployment.services[name] = ServiceProcess(name, free_port(), tmp_path / f"{name}.log")
    monitor = deployment.services["monitor"]
    sandbox = create_sandbox_github(
        webhook_url=f"{monitor.url}/webhooks/github", webhook_secret=WEBHOOK_SECRET, rerun_delay_seconds=0.5
    )
    github_server, model_server = HttpServer(sandbox.app), HttpServer(create_sandbox_model().app)
    await github_server.start()
    await model_server.start()
    deployment.env = {
        "NATS_URL": nats_url,
        "DATABASE_URL": database_url,
        "MEDIC_GITHUB_API_URL": github_server.url,
        "MEDIC_GITHUB_TOKEN": "chaos-token",
        "MEDIC_GITHUB_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "MEDIC_MODEL_BASE_URL": f"{model_server.url}/v1",
        "MEDIC_MODEL_API_KEY": "sandbox",
        "MEDIC_APPROVAL_TIMEOUT_HOURS": "0.01",  # 36 s: waiting for a person ends in "expired"
        "MEDIC_POLLING_INTERVAL_MINUTES": "0.25",  # catch-up polls find what a dead monitor missed
        "MEDIC_VERIFY_TIMEOUT_SECONDS": "120",
        "MEDIC_DATA_DIR": str(tmp_path / "data"),
    }
    faults: list[str] = []
    try:
        for name in ("projector", *SERVICES[:-1]):  # the projector migrates first
            deployment.start(name)
            await asyncio.to_thread(deployment.wait_ready, name)
        burst = asyncio.create_task(simulate_in_batches(github_server.url, FAILURES, batch=20))
        faults = await inject_faults(deployment, sandbox, burst)
        created = await burst
        assert len(created) == FAILURES
        expected = await settled_or_lost(sandbox, database_url, within=SETTLE_SECONDS)
        report = await examine(deployment, sandbox, database_url, nats_url, expected)
        stopped = await asyncio.to_thread(deployment.stop_all)
    finally:
        for name in list(deployment.services):
            deployment.kill(name)
        await github_server.stop()
        await model_server.stop()
        deployment.stop_postgres()
        deployment.stop_nats()

    TALLY.add(
        "faults (kills, restarts, outages)",
        faults=len(faults),
        processed=report["processed"],
        lost=len(report["lost"]),
        duplicated=report["duplicated"],
    )
    print(json.dumps({"faults": faults, **{k: v for k, v in report.items() if k != "lost"}}, indent=1))
    assert report["lost"] == [], report["lost"][:20]
    assert report["twice_terminal"] == []
    assert report["duplicated"] == 0
    assert report["replay_exit"] == 0, report["replay_output"]
    assert report["unexplained_dead_letters"] == []
    assert all(code == 0 for code in stopped.values()), stopped  # a clean stop drains and exits 0


async def inject_faults(deployment: Deployment, sandbox: Any, burst: asyncio.Task[Any]) -> list[str]:
    faults: list[str] = []

    async def pause(seconds: float = 3.0) -> None:
        await asyncio.sleep(seconds)

    await pause(5)
    for name in SERVICES:
        await asyncio.to_thread(deployment.kill, name)
        faults.append(f"SIGKILL {name}")
        await pause(1)
        deployment.start(name)
        await asyncio.to_thread(deployment.wait_ready, name)
        await pause()
    await asyncio.to_thread(deployment.stop_nats)
    faults.append("restart nats-server")
    await pause(3)
    await asyncio.to_thread(deployment.start_nats)
    await pause(5)
    await asyncio.to_thread(deployment.stop_postgres)
    faults.append(f"stop PostgreSQL {POSTGRES_DOWN_SECONDS:.0f}s")
    await asyncio.sleep(POSTGRES_DOWN_SECONDS)
    await asyncio.to_thread(deployment.start_postgres)
    await pause(5)
    sandbox.set_modes({"server_errors": 40})
    faults.append("GitHub 5xx x40")
    await pause(8)
    sandbox.set_modes({"rate_limit_exhausted_for_seconds": 15})
    faults.append("GitHub rate limit 15s")
    await pause(20)
    return faults


def expected_failures(sandbox: Any) -> set[str]:
    """Every failed attempt the sandbox GitHub holds is a failure ci-medic must settle."""
    return {
        derive_failure_id(run.repository.full_name, run.id, attempt.number)
        for run in sandbox.store.runs.values()
        for attempt in run.attempts
        if attempt.status == "completed" and attempt.conclusion in FAILED
    }


async def settled_or_lost(sandbox: Any, database_url: str, *, within: float) -> set[str]:
    deadline = time.monotonic() + within
    while True:
        await sandbox.drain()
        expected = expected_failures(sandbox)
        conn = await asyncpg.connect(database_url, server_settings={"search_path": "medic"})
        try:
            rows = await conn.fetch(
                "SELECT failure_id FROM failures WHERE state = ANY($1::text[])", list(TERMINAL)
            )
        finally:
            await conn.close()
        if expected <= {r["failure_id"] for r in rows} or time.monotonic() > deadline:
            return expected
        await asyncio.sleep(2)


async def examine(
    deployment: Deployment, sandbox: Any, database_url: str, nats_url: str, expected: set[str]
) -> dict[str, Any]:
    conn = await asyncpg.connect(database_url, server_settings={"search_path": "medic"})
    try:
        states = {
            r["failure_id"]: r["state"] for r in await conn.fetch("SELECT failure_id, state FROM failures")
        }
        twice = await conn.fetch(
            "SELECT failure_id FROM audit_log WHERE action = ANY($1::text[])"
            " GROUP BY failure_id HAVING count(*) > 1",
            list(TERMINAL_EVENTS),
        )
        rerun_failures = await conn.fetchval(
            "SELECT count(DISTINCT failure_id) FROM audit_log WHERE action = 'RemediationStarted'"
            " AND details->'payload'->'action'->>'kind' = ANY($1::text[])",
            list(RERUN_ACTIONS),
        )
        audited = {r["event_id"] for r in await conn.fetch("SELECT event_id FROM audit_log")}
    finally:
        await conn.close()
    reruns_at_github = sum(len(run.attempts) - 1 for run in sandbox.store.runs.values())
    dead = await dead_letters(nats_url)
    replay = await asyncio.to_thread(
        subprocess.run,
        [MEDIC, "audit", "replay", "--replace"],
        env=os.environ | deployment.env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    return {
        "processed": len(states),
        "expected": len(expected),
        "lost": sorted(fid for fid in expected if states.get(fid) not in TERMINAL),
        "twice_terminal": [r["failure_id"] for r in twice],
        "reruns_at_github": reruns_at_github,
        "failures_rerun": rerun_failures,
        "duplicated": max(0, reruns_at_github - int(rerun_failures or 0)),
        "replay_exit": replay.returncode,
        "replay_output": replay.stdout[-2000:] + replay.stderr[-2000:],
        "dead_letters": len(dead),
        "unexplained_dead_letters": [event_id for event_id in dead if event_id not in audited],
    }


async def dead_letters(nats_url: str) -> list[str]:
    """Event ids of the dead-lettered messages (their bytes are the original event)."""
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        try:
            info = await js.stream_info("MEDIC_EVENTS_DLQ")
        except Exception:
            return []
        if not info.state.messages:
            return []
        ids: list[str] = []
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            try:
                msg = await js.get_msg("MEDIC_EVENTS_DLQ", seq)
                ids.append(str(json.loads(msg.data or b"{}").get("event_id", f"dlq-{seq}")))
            except Exception:
                ids.append(f"dlq-{seq}")
        return ids
    finally:
        await nc.close()
