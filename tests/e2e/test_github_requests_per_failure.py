"""What a burst of failures of one repository costs in GitHub requests, counted by the sandbox.

Each failure needs its failed jobs, its job's log and the branch's newest runs (the monitor);
the analyzer's green baseline comes from that same page, so a repository that was never green
costs it one search for the whole burst, not two per failure (as it did before it listened to
the monitor and remembered "none").
"""

from __future__ import annotations

import pytest

from medic.bus import Topology
from tests.pipeline import running_pipeline

pytestmark = pytest.mark.e2e

REPO = "acme/one-push"
FAILURES = 12
SCENARIOS = ["compile_error", "unit_test_assertion", "go_build_error"]
"""Failures no policy re-runs: every request counted is the monitor's or the analyzer's."""


async def test_a_burst_of_one_repository_costs_at_most_three_requests_a_failure(
    nats_url: str, database_url: str, topology: Topology, db_schema: str
) -> None:
    async with running_pipeline(
        nats_url=nats_url, database_url=database_url, topology=topology, db_schema=db_schema
    ) as pipeline:
        sandbox = pipeline.sandbox
        assert sandbox is not None
        sandbox.simulate(FAILURES, repositories=[REPO], scenarios=SCENARIOS)
        summary = await pipeline.wait_settled(FAILURES, within=90)
        assert summary["total_failures"] == FAILURES
        remediated = summary["by_state"].get("remediated", 0) + summary["by_state"].get(
            "remediation_failed", 0
        )
        assert remediated == 0, summary["by_state"]  # nothing the executor asked GitHub for
        requests = sum(window.used for window in sandbox.budget.windows.values())
        # monitor: jobs, log, branch page (shared while in flight) = at most 3 per failure;
        # analyzer: one search of every branch for the burst; one more for a retried request
        assert requests <= 3 * FAILURES + 2, requests
