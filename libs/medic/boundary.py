"""Text and numbers from strangers, made valid for every consumer before they enter an event.

A commit message, a branch name or a job log is written by whoever can push to a
repository. Python happily holds what some consumers cannot: PostgreSQL stores no NUL
(``\\u0000``) in text or JSON, UTF-8 (and so JSON on the wire, NATS, every HTTP client) has
no lone surrogates, a 1 MB commit message does not fit a 1 MiB NATS message beside the
rest, and an id of 2**63 overflows ``bigint`` and is not exact in JavaScript. Every such
value is cleaned (or refused) once, where it enters; after that it is ordinary data.
"""

from __future__ import annotations

import re
from typing import Any

REPLACEMENT = "\ufffd"
MAX_ID = 2**53 - 1
"""Largest id accepted from GitHub: exact in JavaScript (the dashboard) and in ``bigint``."""
MAX_RUN_ATTEMPT = 1000
"""GitHub allows 50 re-runs of a run; anything far past that is not a real attempt."""
MAX_JSON_DEPTH = 64
"""GitHub's deepest webhook payload nests about 8 levels; 64 is generous and stack-safe."""

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2066-\u2069\ufeff\ud800-\udfff]")


def clean_text(value: str) -> str:
    """``value`` with NUL and lone surrogates replaced by U+FFFD (so a reader sees that something was there).

    A well-formed surrogate *pair* cannot occur in a Python ``str`` (it is one code point),
    so every surrogate code unit left is lone.
    """
    if _UNSTORABLE.search(value) is None:
        return value
    return _UNSTORABLE.sub(REPLACEMENT, value)


def bounded_text(value: str, max_bytes: int) -> str:
    """Cleaned and cut to at most ``max_bytes`` of UTF-8, the cut said in a marker at the end."""
    value = clean_text(value)
    encoded = value.encode()
    if len(encoded) <= max_bytes:
        return value
    marker = f"\n…[truncated by ci-medic: {len(encoded)} bytes, kept the first {{kept}}]"
    room = max(0, max_bytes - len(marker.format(kept=max_bytes).encode()))
    kept = encoded[:room].decode(errors="ignore")
    return kept + marker.format(kept=len(kept.encode()))


def has_control_characters(value: str) -> bool:
    """True for C0/C1 controls, line separators, invisible and bidi-override marks (which make
    one name look like another) and lone surrogates: never in a name or an id."""
    return _CONTROL.search(value) is not None


_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
"""A complete JSON string, escapes included (unrolled, so long strings match in C, not per byte)."""
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


def json_too_deep(body: bytes, max_depth: int = MAX_JSON_DEPTH) -> bool:
    """True when ``body`` nests arrays/objects deeper than ``max_depth`` (checked before parsing).

    Python's JSON parser recurses per level and dies with ``RecursionError`` on a few
    thousand; this check is iterative and skips brackets inside strings. Strings are cut out
    and everything but brackets dropped by the regex engine and ``bytes.translate`` (both C);
    Python then walks only the brackets. A quote left over opens a string that never ends:
    nothing after it is structure. (A byte-by-byte loop cost 1.5 ms per webhook, 4% of the
    pipeline's CPU in the bench.)
    """
    outside = _JSON_STRING.sub(b"", body)
    unterminated = outside.find(b'"')
    if unterminated >= 0:
        outside = outside[:unterminated]
    brackets = outside.translate(None, _NOT_BRACKETS)
    if len(brackets) <= max_depth:
        return False
    depth = 0
    for byte in brackets:
        if byte in (0x5B, 0x7B):  # [ {
            depth += 1
            if depth > max_depth:
                return True
        else:
            depth -= 1
    return False


def clean_json(value: Any) -> Any:
    """A parsed JSON value with every string (keys too) cleaned; iterative, so depth is no risk."""
    if isinstance(value, str):
        return clean_text(value)
    if not isinstance(value, dict | list):
        return value
    root: list[Any] = [value]
    stack: list[tuple[Any, Any, Any]] = [(root, 0, value)]
    while stack:
        parent, key, node = stack.pop()
        if isinstance(node, dict):
            cleaned: dict[str, Any] = {}
            for k, v in node.items():
                cleaned[clean_text(k)] = v
            parent[key] = cleaned
            for k, v in cleaned.items():
                if isinstance(v, str):
                    cleaned[k] = clean_text(v)
                elif isinstance(v, dict | list):
                    stack.append((cleaned, k, v))
        elif isinstance(node, list):
            items = list(node)
            parent[key] = items
            for i, v in enumerate(items):
                if isinstance(v, str):
                    items[i] = clean_text(v)
                elif isinstance(v, dict | list):
                    stack.append((items, i, v))
    return root[0]


def has_unstorable(value: Any) -> bool:
    """True when any string in a parsed JSON value holds NUL or a lone surrogate."""
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, str):
            if _UNSTORABLE.search(node):
                return True
        elif isinstance(node, dict):
            stack.extend(node.keys())
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return False
