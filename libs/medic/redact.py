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

from collections.abc import Iterator
from typing import Any, Final

import re2

MARKER_PREFIX: Final = "[REDACTED:"

_KEY_NAME = r"[A-Za-z0-9_.-]{0,64}"
_ASSIGN_WORDS = (
    r"(?i:password|passwd|secret|token|api[_-]?key|apikey|account[_-]?key|shared[_-]?access[_-]?key)"
)
_SEP = r"""["']?[ \t]{0,8}[:=][ \t]{0,8}"""
_BARE_VALUE = r"""[^\s"'`,;&\[\]<>{}()]+"""

_TOKEN_SHAPES: Final[tuple[tuple[str, str], ...]] = (
    # Recognisable by their shape alone (a documented prefix): replaced whole, wherever they are.
    ("github_token", r"gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}"),
    ("slack_token", r"(?:xoxe\.)?(?:xox[a-z]|xapp)-[A-Za-z0-9-]{8,}"),
    ("aws_access_key_id", r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b"),
    ("jwt", r"\beyJ[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]*"),
    ("npm_token", r"\bnpm_[A-Za-z0-9]{36}\b"),
    ("pypi_token", r"\bpypi-AgE[A-Za-z0-9_-]{50,}"),
    ("gitlab_token", r"\bgl(?:pat|ptt|dt|rt|cbt|soat|ft|imt|agent)-[A-Za-z0-9_-]{20,}"),
    ("stripe_key", r"\b[rs]k_(?:live|test)_[A-Za-z0-9]{20,}"),
    ("anthropic_key", r"\bsk-ant-[A-Za-z0-9_-]{32,}"),
    ("openai_key", r"\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{32,}"),
    ("google_api_key", r"\bAIza[A-Za-z0-9_-]{35}"),
    ("huggingface_token", r"\bhf_[A-Za-z]{34}\b"),
    ("docker_token", r"\bdckr_pat_[A-Za-z0-9_-]{27,}"),
    ("sendgrid_key", r"\bSG\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}\b"),
    ("shopify_token", r"\bshp(?:at|ca|pa|ss)_[a-fA-F0-9]{32}\b"),
)
"""Token formats documented by their issuers (see tests/data/secrets/formats.json)."""

_PATTERNS: Final[tuple[tuple[str, str], ...]] = (
    # A truncated tail may cut the END line off: then everything after BEGIN goes.
    (
        "private_key",
        r"(?P<private_key>-----BEGIN[A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----(?s:.*?)"
        r"(?:-----END[A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----|\z))",
    ),
    (
        "url_credentials",
        r"(?P<url_scheme>\b[A-Za-z][A-Za-z0-9+.-]{0,20}://)"
        r"(?P<url_credentials>[^\s/@:\[\]\"'<>]*:[^\s/@\[\]\"'<>]+)@",
    ),
    (
        "authorization",
        r"(?P<auth_prefix>(?i:authorization)[\"']?[ \t]{0,8}[:=][ \t]{0,8}[\"']?"
        r"(?i:bearer|basic|token|bot)[ \t]{1,8})(?P<authorization>[A-Za-z0-9._~+/-]+=*)",
    ),
    ("bearer", r"(?P<bearer_prefix>\b(?i:bearer)[ \t]{1,8})(?P<bearer>[A-Za-z0-9._~+/-]{12,}=*)"),
    (
        "slack_webhook",
        r"(?P<slack_webhook_prefix>\bhttps?://hooks\.slack(?:-gov)?\.com/(?:services|workflows|triggers)/)"
        r"(?P<slack_webhook>[A-Za-z0-9_/-]+)",
    ),
    *((kind, f"(?P<{kind}>{pattern})") for kind, pattern in _TOKEN_SHAPES),
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
    "slack_webhook",
    *(kind for kind, _ in _TOKEN_SHAPES),
    "aws_secret_access_key",
    "password",
    "secret",
    "token",
    "api_key",
    "access_key",
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
    if "key" in lowered:
        return "access_key"
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
        ("slack_webhook", "slack_webhook_prefix"),
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
    for kind, _ in _TOKEN_SHAPES:
        if match.start(_GROUP[kind]) >= 0:
            return _marker(kind)
    return bytes(match.group(0)).decode()  # unreachable: every alternative names its kind


_MAX_PASSES: Final = 6


_VALUE_GROUPS: Final = ("assign_value", "bearer", "authorization", "aws_secret_access_key")
"""Groups that take whatever follows a key word as the value."""


def _context_of_next_secret(data: bytes, match: Any) -> int | None:
    """Where the next secret starts, if what ``match`` took as its value is that secret's context.

    ``password= aws_secret_access_key = X`` or ``Bearer  Authorization: Basic X``: the
    first key has an empty value and swallows the next key as if it were the value, hiding
    the real secret behind it. When another secret starts inside the value and runs past
    its end, the value was that secret's context: leave it, and redact from there.
    """
    for name in _VALUE_GROUPS:
        start = match.start(_GROUP[name])
        if start >= 0:
            following = SECRET_PATTERN.search(data, start)
            if following is not None and following.start() < match.end() < following.end():
                return int(following.start())
            return None
    return None


def _secret_matches(data: bytes) -> Iterator[Any]:
    """Each secret-looking span, left to right, without overlaps."""
    position = 0
    while (match := SECRET_PATTERN.search(data, position)) is not None:
        if (resume := _context_of_next_secret(data, match)) is not None:
            position = resume
            continue
        yield match
        position = max(match.end(), match.start() + 1)


def _redact_once(text: str) -> str:
    data = text.encode("utf-8", "surrogatepass")
    pieces: list[str] = []
    end = 0
    for match in _secret_matches(data):
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
    for match in _secret_matches(text.encode("utf-8", "surrogatepass")):
        value = _group(match, "assign_value")
        if value is not None and value.strip("\"'").startswith(MARKER_PREFIX):
            continue
        count += 1
    return count
