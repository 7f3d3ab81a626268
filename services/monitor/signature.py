"""GitHub webhook signatures (``X-Hub-Signature-256``): HMAC-SHA256 over the raw body."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence


def sign(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(body: bytes, header: str | None, secrets: Sequence[str]) -> bool:
    """True when ``header`` is the signature of ``body`` under any of ``secrets``.

    Several secrets are accepted so one can be rotated without dropping deliveries.
    Every candidate is compared in constant time.
    """
    if not header or not header.startswith("sha256=") or not secrets:
        return False
    matches = [hmac.compare_digest(sign(body, secret), header) for secret in secrets]
    return any(matches)
