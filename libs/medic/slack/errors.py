"""Errors of the Slack client, independent of slack_sdk underneath.

One place decides what they mean: ``SlackRateLimited`` says how long Slack asked us to wait
(``Retry-After``), ``SlackUnavailable`` is transient (5xx, timeouts, connection failures; the
durable consumer retries), and any other ``SlackError`` is Slack refusing the request
(``{"ok": false, "error": ...}``), which retrying will not change.
"""

from __future__ import annotations


class SlackError(Exception):
    """Slack refused or failed a Web API call; ``code`` is Slack's ``error`` string."""

    def __init__(self, message: str, *, method: str, code: str = "", status: int | None = None) -> None:
        super().__init__(message)
        self.method = method
        self.code = code
        self.status = status


class SlackRateLimited(SlackError):
    """HTTP 429: wait ``retry_after`` seconds before calling this method for this channel again."""

    def __init__(self, message: str, *, method: str, retry_after: float) -> None:
        super().__init__(message, method=method, code="ratelimited", status=429)
        self.retry_after = retry_after


class SlackUnavailable(SlackError):
    """5xx answers, timeouts or connection failures: worth retrying later."""
