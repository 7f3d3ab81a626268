"""Reading GitHub's rate-limit answers: how long to wait, and when a 403 is no limit at all."""

from __future__ import annotations

import httpx

from medic.github.ratelimit import SECONDARY_LIMIT_MIN_WAIT, rate_limit_wait

NOW = 1_800_000_000.0


def answer(status: int, headers: dict[str, str], message: str = "") -> httpx.Response:
    return httpx.Response(status, headers=headers, json={"message": message})


def test_retry_after_wins() -> None:
    wait = rate_limit_wait(answer(429, {"retry-after": "7", "x-ratelimit-remaining": "0"}), now=NOW)
    assert wait is not None and wait.seconds == 7 and wait.reason == "retry-after"


def test_primary_limit_waits_until_reset() -> None:
    headers = {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(NOW) + 12)}
    wait = rate_limit_wait(answer(403, headers, "API rate limit exceeded"), now=NOW)
    assert wait is not None and 12 <= wait.seconds < 13
    assert wait.reset_at is not None and wait.reset_at.timestamp() == NOW + 12


def test_secondary_limit_without_headers_waits_a_minute() -> None:
    wait = rate_limit_wait(answer(403, {}, "You have exceeded a secondary rate limit."), now=NOW)
    assert wait is not None and wait.seconds == SECONDARY_LIMIT_MIN_WAIT


def test_a_plain_403_is_a_refusal_not_a_limit() -> None:
    assert (
        rate_limit_wait(answer(403, {"x-ratelimit-remaining": "4000"}, "Resource not accessible"), now=NOW)
        is None
    )
    assert rate_limit_wait(answer(404, {"x-ratelimit-remaining": "0"}), now=NOW) is None
