"""The fault suite runs only under ``make chaos`` (``MEDIC_CHAOS=1``): it takes minutes, not seconds.

Not collected otherwise (rather than skipped), so ``make test`` neither runs nor reports it.
"""

from __future__ import annotations

import os

from tests.attacks.conftest import pytest_terminal_summary  # noqa: F401 - prints the table here too

collect_ignore_glob = [] if os.environ.get("MEDIC_CHAOS") == "1" else ["test_*.py"]
