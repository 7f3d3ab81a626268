"""Errors of the GitHub client, independent of the HTTP library underneath.

Callers map these to outcomes in one place: ``NotFound`` is permanent, ``RateLimitExhausted``
and ``GitHubUnavailable`` are transient (retry later, e.g. ``nak(delay)``), anything else
``GitHubError`` is a refusal worth surfacing to a human.
"""

from __future__ import annotations

from datetime import datetime


class GitHubError(Exception):
    """GitHub refused or failed a request."""

    def __init__(self, message: str, *, status: int | None = None, route: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.route = route


class NotFound(GitHubError):
    """The repository, run, job or cache does not exist (or the token cannot see it)."""


class RateLimitExhausted(GitHubError):
    """The budget is spent and the reset is further away than the client may wait."""

    def __init__(
        self, message: str, *, reset_at: datetime | None, status: int | None = None, route: str = ""
    ) -> None:
        super().__init__(message, status=status, route=route)
        self.reset_at = reset_at

    def seconds_until_reset(self, *, now: datetime | None = None, unknown: float = 60.0) -> float:
        """How long to wait before trying again (a little past the reset, so it has happened)."""
        if self.reset_at is None:
            return unknown
        moment = now or datetime.now(self.reset_at.tzinfo)
        return max((self.reset_at - moment).total_seconds(), 0.0) + 1.0


class GitHubUnavailable(GitHubError):
    """5xx answers, timeouts or connection failures persisted through every retry."""
