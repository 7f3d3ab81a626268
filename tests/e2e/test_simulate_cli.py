"""``medic simulate`` as a person runs it against a running system: a progress bar, then one
row per kind of failure with the outcomes so far; ``--json`` keeps every failure for scripts."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest

from medic.bus import Topology
from medic.sandbox.simulate import NOT_SEEN, failure_id_of, summarize
from tests.pipeline import SETTLED, running_pipeline

pytestmark = pytest.mark.e2e
MEDIC = str(Path(sys.executable).parent / "medic")


async def medic(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        MEDIC, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=150)
    return int(proc.returncode or 0), out.decode(), err.decode()


async def test_simulate_shows_progress_then_a_table_of_kinds_and_outcomes(
    nats_url: str, database_url: str, topology: Topology, db_schema: str
) -> None:
    async with running_pipeline(
        nats_url=nats_url, database_url=database_url, topology=topology, db_schema=db_schema
    ) as pipeline:
        code, out, err = await medic(
            "simulate",
            "--failures",
            "7",
            "--url",
            pipeline.sandbox_url,
            "--api",
            pipeline.url,
            "--wait",
            "60",
        )
        assert code == 0, out + err
        assert "simulating" in err and "7/7" in err
        assert "7 simulated failures" in out
        lines = out.splitlines()
        assert len(lines) < 30, "a short table, not a list of every run"
        assert any("total" in line and " 7 " in line for line in lines)
        assert "remediated" in out or "awaiting_approval" in out or "no_action" in out

        code, out, err = await medic(
            "simulate",
            "--failures",
            "3",
            "--url",
            pipeline.sandbox_url,
            "--api",
            pipeline.url,
            "--json",
            "--wait",
            "60",
        )
        assert code == 0, out + err
        details = json.loads(out)["failures"]
        assert len(details) == 3
        for run in details:
            assert run["failure_id"] == failure_id_of(run)
            assert run["state"] in SETTLED
            assert {"repository", "run_id", "scenario", "category"} <= set(run)


def test_summary_counts_each_kind_and_outcome() -> None:
    created = [
        {"repository": "a/b", "run_id": 1, "run_attempt": 1, "scenario": "flaky_test"},
        {"repository": "a/b", "run_id": 2, "run_attempt": 1, "scenario": "flaky_test"},
        {"repository": "a/b", "run_id": 3, "run_attempt": 1, "scenario": "oom_killed"},
    ]
    states = {failure_id_of(created[0]): "remediated", failure_id_of(created[2]): "awaiting_approval"}
    rows = {row.kind: row for row in summarize(created, states)}
    assert rows["flaky_test"].failures == 2
    assert rows["flaky_test"].states == {"remediated": 1, NOT_SEEN: 1}
    assert rows["oom_killed"].states == {"awaiting_approval": 1}
    assert all(not row.states for row in summarize(created, None))  # the API did not answer
