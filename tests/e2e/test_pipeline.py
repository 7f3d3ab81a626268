"""A failure flows end to end: webhook -> analysis -> gate -> fix or approval -> audit trail."""

from __future__ import annotations

import asyncio

import pytest

from medic.bus import Topology
from medic.sandbox.simulate import simulate
from tests.pipeline import SETTLED, running_pipeline
from tests.unit.test_service_contracts import undeclared_publications

pytestmark = pytest.mark.e2e


async def test_twenty_simulated_failures_settle_with_their_trail(
    nats_url: str, database_url: str, topology: Topology, db_schema: str
) -> None:
    async with running_pipeline(
        nats_url=nats_url, database_url=database_url, topology=topology, db_schema=db_schema
    ) as pipeline:
        await simulate(pipeline.sandbox_url, 20)
        summary = await pipeline.wait_settled(20, within=60)

        assert summary["total_failures"] == 20
        states = summary["by_state"]
        assert set(states) <= SETTLED, states
        assert states.get("remediated", 0) > 0, f"some failures are fixed automatically: {states}"
        assert states.get("awaiting_approval", 0) > 0, f"some wait for a person: {states}"
        assert summary["success_rate"] is not None

        failures = (await pipeline.http.get(f"{pipeline.url}/api/failures", params={"limit": 100})).json()
        ids = [f["failure_id"] for f in failures["items"]]
        assert len(ids) == 20
        published: list[tuple[str, str]] = []
        for failure_id in ids:
            rows = await pipeline.audit(failure_id)
            actions = [row["action"] for row in rows]
            assert actions[:3] == ["FailureDetected", "AnalysisCompleted", "GateDecided"], actions
            published += [(row["actor"], row["action"]) for row in rows]
        assert len(published) >= 60
        assert undeclared_publications(published) == [], "a service published what it does not declare"


async def test_approving_a_pending_failure_runs_its_remediation(
    nats_url: str, database_url: str, topology: Topology, db_schema: str
) -> None:
    async with running_pipeline(
        nats_url=nats_url,
        database_url=database_url,
        topology=topology,
        db_schema=db_schema,
        protected_repositories=("octo-org/octo-repo", "octo-org/billing-api", "octo-org/web-frontend"),
    ) as pipeline:
        await simulate(pipeline.sandbox_url, 4)
        await pipeline.wait_settled(4, within=30)
        pending = (
            await pipeline.http.get(f"{pipeline.url}/api/approvals", params={"status": "pending"})
        ).json()
        retryable = [p for p in pending if p["action"]["kind"] == "rerun_failed_jobs"]
        assert retryable, pending
        chosen = retryable[0]
        response = await pipeline.http.post(
            f"{pipeline.url}/api/approvals/{chosen['approval_id']}/approve", json={"approver": "alice"}
        )
        assert response.status_code == 200, response.text
        again = await pipeline.http.post(
            f"{pipeline.url}/api/approvals/{chosen['approval_id']}/reject", json={"approver": "bob"}
        )
        assert again.status_code == 409
        for _ in range(150):
            trail = [row["action"] for row in await pipeline.audit(chosen["failure_id"])]
            if "RemediationFinished" in trail:
                break
            await asyncio.sleep(0.2)
        assert trail[-3:] == ["ApprovalGranted", "RemediationStarted", "RemediationFinished"], trail
