"""Where the providers' published API descriptions are: ``../shared/contracts`` beside the clone."""

from __future__ import annotations

import os
from pathlib import Path

_BESIDE_CLONE = Path(__file__).resolve().parents[2] / "shared" / "contracts"
CONTRACTS = Path(os.environ.get("MEDIC_CONTRACTS_DIR", _BESIDE_CLONE))
