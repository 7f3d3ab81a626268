"""The pipeline bench's ceiling: what the cores allow when the services cost nothing."""

from __future__ import annotations

import os

from tests.bench.pipeline_bench import Milestones, Run, _ceiling


def _run(cpu: dict[str, float | None]) -> Run:
    return Run(
        shape="one_process",
        failures=500,
        sender={},
        seen=Milestones(),
        elapsed=10.0,
        catch_up=0.0,
        lag_samples=[],
        cpu=cpu,
        github_requests=0,
    )


def test_the_ceiling_counts_every_process_but_the_services() -> None:
    run = _run({"services:all": 8.7, "sandbox_github_process": 2.5, "nats_server": 2.0, "postgres": None})

    assert run.others_cpu() == 4.5
    assert _ceiling(run) == round((os.cpu_count() or 1) * 500 / 4.5, 1)


def test_no_ceiling_when_nothing_beside_the_services_was_measured() -> None:
    assert _ceiling(_run({"services:all": 8.7, "nats_server": None})) is None
