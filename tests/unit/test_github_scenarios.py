"""The sandbox's failure kinds: enough of them, a mix, and logs that look like GitHub's."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from medic.sandbox.github_scenarios import SCENARIOS, LogContext, scenario_mix

STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}Z ")
CTX = LogContext(
    "octo-org/octo-repo", ".github/workflows/ci.yml", "main", "a" * 40, datetime(2026, 11, 25, 10, tzinfo=UTC)
)


def test_at_least_eight_kinds_with_both_transient_and_permanent() -> None:
    assert len({s.name for s in SCENARIOS}) == len(SCENARIOS) >= 8
    transient = {s.name for s in SCENARIOS if s.transient}
    assert transient == {"flaky_test", "network_error", "runner_lost", "job_timeout"}


def test_every_log_line_is_timestamped_and_grouped_like_github() -> None:
    for scenario in SCENARIOS:
        text = scenario.build_log(CTX)
        lines = text.splitlines()
        assert all(STAMP.match(line) for line in lines), scenario.name
        assert any("##[group]" in line for line in lines) and any("##[endgroup]" in line for line in lines)
        assert "##[error]" in text, scenario.name
        assert "Cleaning up orphan processes" in lines[-1], "noise after the error"


def test_twenty_failures_are_a_mix() -> None:
    kinds = {s.name for s in scenario_mix(20)}
    assert len(kinds) == len(SCENARIOS)
    assert scenario_mix(3, start=len(SCENARIOS)) == list(SCENARIOS[:3])
