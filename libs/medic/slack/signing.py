"""Slack's request signature (``v0``), for the sandbox that plays Slack and for tests.

Verification of incoming requests is Bolt's (``AsyncRequestVerification``); this is the
sending side, built from the documented recipe in ``tests/contract/providers/slack/request-signing.md``.
"""

from __future__ import annotations

import hashlib
import hmac


def signature(secret: str, timestamp: str | int, body: bytes) -> str:
    base = b"v0:" + str(timestamp).encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def signed_headers(secret: str, timestamp: int, body: bytes, content_type: str) -> dict[str, str]:
    return {
        "Content-Type": content_type,
        "X-Slack-Request-Timestamp": str(timestamp),
        "X-Slack-Signature": signature(secret, timestamp, body),
    }


MAX_AGE_SECONDS = 300


def verify(secret: str, body: bytes, timestamp: str, given: str, *, now: float) -> bool:
    """Slack signed exactly these bytes within five minutes (any bytes: no decoding first)."""
    if not secret or not timestamp.isdigit() or abs(now - int(timestamp)) > MAX_AGE_SECONDS:
        return False
    return hmac.compare_digest(signature(secret, timestamp, body).encode(), given.encode("utf-8", "replace"))
