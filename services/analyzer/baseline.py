"""Compare a failing log with the last green log of the same job: what is new is suspect.

Two runs of one job print mostly the same lines; the failure's lines are among those the
green run never printed. What always differs between runs (timestamps, durations, ids,
hashes, temporary paths, progress counters) is normalised away first, then each line is
looked up by its normalised hash in the green run's set: linear time, memory bounded by
the green log's distinct lines.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence

from medic.services.analyzer.fingerprint import normalise_line
from medic.services.analyzer.logtext import CleanLine, clean_line, iter_raw_lines

MAX_BASELINE_LINES = 200_000
"""Lines of the green log read at most; a bigger one is compared on its head."""
_PROGRESS = re.compile(r"\d+\s*%|\[[=#>. -]+\]|\(\d+/\d+\)")


def line_key(text: str) -> bytes:
    """The normalised hash of one cleaned line; runs of one job agree on it when nothing changed."""
    normalised = normalise_line(_PROGRESS.sub("", text[:500]))
    return hashlib.blake2b(normalised.encode("utf-8", "replace"), digest_size=8).digest()


def baseline_keys(baseline: Iterable[str]) -> set[bytes]:
    keys: set[bytes] = set()
    for count, raw in enumerate(iter_raw_lines(baseline)):
        if count >= MAX_BASELINE_LINES:
            break
        keys.add(line_key(clean_line(raw)[0]))
    return keys


def added_lines(lines: Sequence[CleanLine], baseline: Iterable[str]) -> set[int]:
    """Indices (into ``lines``) of non-blank lines the green run never printed."""
    keys = baseline_keys(baseline)
    return {i for i, line in enumerate(lines) if line.text.strip() and line_key(line.text) not in keys}
