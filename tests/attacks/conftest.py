"""Prints the attack and fault table (see :mod:`tests.attacks.tally`) at the end of the session."""

from __future__ import annotations

from typing import Any

from tests.attacks.tally import TALLY


def pytest_terminal_summary(terminalreporter: Any) -> None:
    lines = TALLY.lines()
    if lines:
        terminalreporter.section("ci-medic attacks and faults")
        for line in lines:
            terminalreporter.write_line(line)
