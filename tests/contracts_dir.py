"""Where the providers' published API descriptions are: copied into ``tests/contract/providers``.

They are GitHub's, Slack's and OpenAI's own machine-readable descriptions and example payloads
(MIT-licensed data, upstream and licence in ``tests/contract/providers/README.md``).
"""

from __future__ import annotations

from pathlib import Path

CONTRACTS = Path(__file__).resolve().parent / "contract" / "providers"
