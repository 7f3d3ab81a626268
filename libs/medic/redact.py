"""Secret redaction for every log excerpt that leaves the process.

CI logs are written by anyone who can push a commit, and they routinely echo
credentials (a misconfigured ``set -x``, a failing ``curl`` printing its URL). Before
an excerpt goes to the model, to Slack or into the database it passes through
:func:`redact`, which replaces each secret with ``[REDACTED:<kind>]``.

All patterns are compiled into one RE2 expression: RE2 runs in time linear in the
input whatever the pattern, so a hostile multi-megabyte log cannot stall the
analyzer, and one pass finds every kind at once. Each pattern is written so that
its own output never matches again (markers contain ``[``, which no value class
accepts), which makes :func:`redact` idempotent.
"""

from __future__ import annotations

from typing import Any, Final

import re2

MARKER_PREFIX: Final = "[REDACTED:"

_KEY_NAME = r"[A-Za-z0-9_.-]{0,64}"
_ASSIGN_WORDS = r"(?i:password|passwd|secret|token|api[_-]?key|apikey)"
_SEP = r"""["']?[ \t]{0,8}[:=][ \t]{0,8}"""
_BARE_VALUE = r"""[^\s"'`,;&\[\]<>{}()]+"""

_PATTERNS: Final[tuple[tuple[str, str], ...]] = (
    # A truncated tail may cut the END line off: then everything after BEGIN goes.
    (
        "private_key",
        r"(?P<private_key>-----BEGIN[A-Z0-9 ]{0,40}PRIVATE KEY-----(?s:.*?)"
        r"(?:-----END[A-Z0-9 ]{0,40}PRIVATE KEY-----|\z))",
    ),
    (
        "url_credentials",
        r"(?P<url_scheme>\b[A-Za-z][A-Za-z0-9+.-]{0,20}://)"
        r"(?P<url_credentials>[^\s/@:\[\]\"'<>]+:[^\s/@\[\]\"'<>]+)@",
    ),
    (
        "authorization",
        r"(?P<auth_prefix>(?i:authorization)[\"']?[ \t]{0,8}[:=][ \t]{0,8}[\"']?"
        r"(?i:bearer|basic|token|bot)[ \t]{1,8})(?P<authorization>[A-Za-z0-9._~+/-]+=*)",
    ),
    ("bearer", r"(?P<bearer_prefix>\b(?i:bearer)[ \t]{1,8})(?P<bearer>[A-Za-z0-9._~+/-]{12,}=*)"),
    ("github_token", r"(?P<github_token>gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,})"),
    ("slack_token", r"(?P<slack_token>(?:xox[abps]|xapp)-[A-Za-z0-9-]{8,})"),
    ("aws_access_key_id", r"(?P<aws_access_key_id>\b(?:AKIA|ASIA)[A-Z0-9]{16}\b)"),
    (
        "jwt",
        r"(?P<jwt>\beyJ[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]*)",
    ),
    (
        "aws_secret_access_key",
        r"(?P<aws_secret_key>(?i:aws_secret_access_key)" + _SEP + r"[\"']?)"
        r"(?P<aws_secret_access_key>[A-Za-z0-9/+=]{16,})",
    ),
    (
        "assignment",
        r"(?P<assign_key>" + _KEY_NAME + _ASSIGN_WORDS + _KEY_NAME + r")"
        r"(?P<assign_sep>" + _SEP + r")"
        r"(?P<assign_value>\"[^\"\r\n]+\"|'[^'\r\n]+'|" + _BARE_VALUE + r")",
    ),
)

SECRET_KINDS: Final[tuple[str, ...]] = (
    "private_key",
    "url_credentials",
    "authorization",
    "bearer",
    "github_token",
    "slack_token",
    "aws_access_key_id",
    "jwt",
    "aws_secret_access_key",
    "password",
    "secret",
    "token",
    "api_key",
)
"""Every ``<kind>`` that can appear in a ``[REDACTED:<kind>]`` marker."""

_OPTIONS = re2.Options()
_OPTIONS.max_mem = 64 << 20  # the combined DFA is large; the default 8 MiB makes RE2 fall back to NFA
# Matching runs on UTF-8 bytes: the str wrapper re-decodes offsets for every match, which
# triples the cost on match-dense input. Every pattern is ASCII, so byte spans never split a
# character and the output stays valid UTF-8.
SECRET_PATTERN: Final[Any] = re2.compile("|".join(p for _, p in _PATTERNS).encode(), _OPTIONS)
"""The combined expression (over bytes); tests use it to count secret-looking spans."""
_GROUP: Final[dict[str, int]] = {
    (name.decode() if isinstance(name, bytes) else name): index
    for name, index in SECRET_PATTERN.groupindex.items()
}


def _assignment_kind(key: str) -> str:
    lowered = key.lower()
    if "pass" in lowered:
        return "password"
    if "api" in lowered and "key" in lowered:
        return "api_key"
    if "secret" in lowered:
        return "secret"
    return "token"


def _marker(kind: str) -> str:
    return f"{MARKER_PREFIX}{kind}]"


def _group(match: Any, name: str) -> str | None:
    value = match.group(_GROUP[name])
    return None if value is None else bytes(value).decode()


def _replace(match: Any) -> str:
    """Keep the harmless context (key name, scheme, header) and swap only the secret."""
    if (block := _group(match, "private_key")) is not None:
        # Keep the line count so per-line excerpt numbering still matches after redaction.
        return _marker("private_key") + "\n" * block.count("\n")
    for kind, context in (
        ("url_credentials", "url_scheme"),
        ("authorization", "auth_prefix"),
        ("bearer", "bearer_prefix"),
        ("aws_secret_access_key", "aws_secret_key"),
    ):
        if match.start(_GROUP[kind]) >= 0:
            suffix = "@" if kind == "url_credentials" else ""
            return f"{_group(match, context)}{_marker(kind)}{suffix}"
    if (value := _group(match, "assign_value")) is not None:
        key, sep = _group(match, "assign_key") or "", _group(match, "assign_sep") or ""
        quote = value[0] if value[0] in "\"'" else ""
        if value.strip("\"'").startswith(MARKER_PREFIX):
            return f"{key}{sep}{value}"
        return f"{key}{sep}{quote}{_marker(_assignment_kind(key))}{quote}"
    for kind in ("github_token", "slack_token", "aws_access_key_id", "jwt"):
        if match.start(_GROUP[kind]) >= 0:
            return _marker(kind)
    return bytes(match.group(0)).decode()  # unreachable: every alternative names its kind


_MAX_PASSES: Final = 6


def _redact_once(text: str) -> str:
    data = text.encode("utf-8", "surrogatepass")
    pieces: list[str] = []
    end = 0
    for match in SECRET_PATTERN.finditer(data):
        pieces.append(data[end : match.start()].decode("utf-8", "surrogatepass"))
        pieces.append(_replace(match))
        end = match.end()
    if not pieces:
        return text
    pieces.append(data[end:].decode("utf-8", "surrogatepass"))
    return "".join(pieces)


def redact(text: str) -> str:
    """Return ``text`` with every recognised secret replaced by ``[REDACTED:<kind>]``.

    A marker can expose a neighbour (``AKIA…EXAMPLEghp_…``: the key id only ends at a word
    boundary once the token beside it is gone), so passes repeat until nothing changes.
    Each changing pass removes secret characters, so this ends; the cap is a safety net.
    """
    for _ in range(_MAX_PASSES):
        if not text:
            return text
        redacted = _redact_once(text)
        if redacted == text:
            return text
        text = redacted
    return text


def count_secrets(text: str) -> int:
    """How many secret-looking spans remain (redaction markers themselves do not count)."""
    count = 0
    for match in SECRET_PATTERN.finditer(text.encode("utf-8", "surrogatepass")):
        value = _group(match, "assign_value")
        if value is not None and value.strip("\"'").startswith(MARKER_PREFIX):
            continue
        count += 1
    return count
