"""Stable signatures for failures: the same failure twice gives the same fingerprint.

Two runs of one broken test differ in everything incidental: timestamps, durations,
temporary directories, the runner's workspace path, ports, commit hashes, object
addresses. Normalising those away leaves the words of the error, whose hash lets the
analyzer recognise a failure it has seen (cache, deduplication, flaky statistics).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable

# Order matters: whole shapes (timestamps, UUIDs, paths) go before the digits inside them.
_SUBSTITUTIONS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]"), ""),
    (
        re.compile(r"\b\d{4}-\d\d-\d\d[T ]\d\d:\d\d(?::\d\d(?:[.,]\d+)?)?(?:Z|[+-]\d\d:?\d\d)?"),
        "<time>",
    ),
    (re.compile(r"\b\d{1,2}:\d\d:\d\d(?:[.,]\d+)?\b"), "<time>"),
    (
        re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", re.IGNORECASE),
        "<uuid>",
    ),
    (
        re.compile(
            r"(?:/tmp|/var/folders|/private/var/folders|/var/tmp|[A-Za-z]:\\Users\\[^\\\s]+\\AppData\\Local\\Temp)"
            r"(?:[/\\][^\s/\\:'\"()\[\]]+)*"
        ),
        "<tmp>",
    ),
    (
        re.compile(r"(?:/home/runner/work|/Users/runner/work|[A-Za-z]:\\a)[/\\][^/\\\s]+[/\\][^/\\\s]+"),
        "<ws>",
    ),
    (re.compile(r"(?:[A-Za-z]:)?(?:[/\\][\w.@+-]+)+[/\\](?=[\w.@+-]+)"), "<path>/"),
    (re.compile(r"\b0x[0-9a-f]+\b", re.IGNORECASE), "<hex>"),
    (re.compile(r"\b(?=[0-9a-f]*\d)(?=[0-9a-f]*[a-f])[0-9a-f]{7,64}\b", re.IGNORECASE), "<hash>"),
    (re.compile(r"\b\d+(?:\.\d+){3}(?::\d+)?\b"), "<ip>"),
    (re.compile(r"\b\d+(?:\.\d+)?\s?(?:ns|µs|us|ms|s|sec|secs|seconds?|m|min|minutes?|h|hours?)\b"), "<dur>"),
    (re.compile(r"\d+(?:\.\d+)?"), "<n>"),
    (re.compile(r"\s+"), " "),
)

MAX_FINGERPRINT_LINES = 12


def normalise_line(text: str) -> str:
    """The error's words with every incidental value replaced by a placeholder."""
    for pattern, replacement in _SUBSTITUTIONS:
        text = pattern.sub(replacement, text)
    return text.strip()


def fingerprint(lines: Iterable[str], *, salt: str = "") -> str:
    """sha256 hex of the normalised lines (blank ones skipped), salted with the cause.

    The salt (the rule that explained the failure) keeps two causes apart even when
    their normalised text happens to agree.
    """
    digest = hashlib.sha256(salt.encode("utf-8", "replace"))
    taken = 0
    for line in lines:
        normalised = normalise_line(line[:2000])
        if not normalised:
            continue
        digest.update(b"\n" + normalised.encode("utf-8", "replace"))
        taken += 1
        if taken >= MAX_FINGERPRINT_LINES:
            break
    return digest.hexdigest()
