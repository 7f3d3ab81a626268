"""The fault suite runs only under ``make chaos`` (``MEDIC_CHAOS=1``): it takes minutes, not seconds.

Not collected otherwise (rather than skipped), so ``make test`` neither runs nor reports it.
"""

from __future__ import annotations

import os
from typing import Any

from tests.attacks.tally import TALLY

CHAOS = os.environ.get("MEDIC_CHAOS") == "1"
collect_ignore_glob = [] if CHAOS else ["test_*.py"]

if CHAOS:  # under make test the attack suite's conftest prints the table; once is enough

    def pytest_terminal_summary(terminalreporter: Any) -> None:
        lines = TALLY.lines()
        if lines:
            terminalreporter.section("ci-medic attacks and faults")
            for line in lines:
                terminalreporter.write_line(line)
