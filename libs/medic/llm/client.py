"""The model port: one typed call that turns a log excerpt into a :class:`ModelVerdict`.

It speaks OpenAI Chat Completions, so the same code talks to OpenAI, any compatible
server, or ``medic.sandbox.openai``. The SDK's own retries are off (``max_retries=0``)
so that exactly one place decides: stamina retries timeouts, connection errors, 429
(waiting as long as ``retry-after-ms``/``retry-after`` asks) and 5xx, within a bounded
number of attempts and a hard wall-clock budget. Everything else, and running out of
budget, is :class:`ModelUnavailable`: the analyzer then keeps the rules' answer.
"""

from __future__ import annotations

import asyncio
import email.utils
import time
from collections.abc import Sequence
from types import TracebackType
from typing import Final, Self

import openai
import stamina
import structlog
from openai.types.chat import ChatCompletion
from prometheus_client import Counter

from medic.events import ExcerptLine

from .prompt import DEFAULT_MAX_LOG_CHARS, build_messages, render_log
from .schema import ModelAnswerInvalid, ModelVerdict, RulesHint, response_format, verdict_from_content

log = structlog.get_logger(__name__)

MODEL_TOKENS: Final = Counter(
    "medic_model_tokens", "Tokens the model reported using, by kind.", ["kind"]
)  # exported as medic_model_tokens_total
MODEL_CALLS: Final = Counter(
    "medic_model_calls", "classify() calls by outcome.", ["outcome"]
)  # exported as medic_model_calls_total

_RETRYABLE_STATUS: Final = frozenset({408, 409, 429})


class ModelError(Exception):
    """Base of everything the model port raises."""


class ModelUnavailable(ModelError):
    """No usable answer within the retry budget; callers fall back to the rules."""


class ModelAnswerUnusable(ModelUnavailable):
    """The model answered, but not with JSON of the requested shape."""


def retry_after_seconds(headers: object) -> float | None:
    """The wait a 429/503 asks for: ``retry-after-ms`` first, then seconds or an HTTP date."""
    get = getattr(headers, "get", None)
    if get is None:
        return None
    if (millis := get("retry-after-ms")) is not None:
        try:
            return max(0.0, float(millis) / 1000)
        except ValueError:
            pass
    value = get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, parsed.timestamp() - time.time())


class ModelClient:
    """Async client for one model; safe to share between concurrent analyses."""

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str,
        model: str,
        timeout: float = 30.0,
        max_attempts: int = 4,
        total_timeout: float = 90.0,
        wait_initial: float = 0.5,
        wait_max: float = 10.0,
        max_retry_after: float = 30.0,
        max_completion_tokens: int = 600,
        temperature: float | None = 0.0,
        max_log_chars: int = DEFAULT_MAX_LOG_CHARS,
    ) -> None:
        """``temperature=None`` omits the parameter, for reasoning models that reject it.

        ``max_retry_after``: a 429 asking for a longer wait than this is not retried;
        waiting would only spend the analysis's time budget on a likely quota problem.
        """
        if max_attempts < 1 or total_timeout <= 0 or timeout <= 0:
            raise ValueError("max_attempts >= 1, timeout > 0 and total_timeout > 0 are required")
        if not api_key.strip():
            raise ValueError("an api_key is required (any non-empty value for the sandbox model)")
        self._openai = openai.AsyncOpenAI(base_url=base_url, api_key=api_key, timeout=timeout, max_retries=0)
        self.model = model
        self._max_attempts = max_attempts
        self._total_timeout = total_timeout
        self._wait_initial = wait_initial
        self._wait_max = wait_max
        self._max_retry_after = max_retry_after
        self._max_completion_tokens = max_completion_tokens
        self._temperature = temperature
        self._max_log_chars = max_log_chars

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._openai.close()

    def warm(self) -> None:
        """Load the request path now: the SDK imports its chat resources (hundreds of modules)
        on first use, which in a service would hold the event loop, and every failure in
        flight, during its first model call. A service calls this while starting."""
        _ = self._openai.chat.completions.create
        response_format()

    def _backoff(self, exc: Exception) -> bool | float:
        """Stamina's hook: False = give up, True = exponential backoff, float = wait exactly."""
        if isinstance(exc, openai.APIConnectionError):  # includes APITimeoutError
            return True
        if not isinstance(exc, openai.APIStatusError):
            return False
        status = exc.status_code
        if status not in _RETRYABLE_STATUS and status < 500:
            return False
        if status == 429 and getattr(exc, "code", None) == "insufficient_quota":
            return False  # retrying an exhausted quota only burns the budget
        wait = retry_after_seconds(exc.response.headers)
        if wait is None:
            return True
        if wait > self._max_retry_after:
            return False
        return wait

    async def _create(self, messages: list[openai.types.chat.ChatCompletionMessageParam]) -> ChatCompletion:
        async for attempt in stamina.retry_context(
            on=self._backoff,
            attempts=self._max_attempts,
            timeout=self._total_timeout,
            wait_initial=self._wait_initial,
            wait_max=self._wait_max,
            wait_jitter=self._wait_initial,
        ):
            with attempt:
                return await self._openai.chat.completions.create(
                    model=self.model,
                    messages=messages,
                    response_format=response_format(),
                    max_completion_tokens=self._max_completion_tokens,
                    temperature=openai.omit if self._temperature is None else self._temperature,
                )
        raise ModelUnavailable("retry loop ended without an attempt")  # unreachable: attempts >= 1

    async def classify(self, *, excerpt: Sequence[ExcerptLine], rules_hint: RulesHint) -> ModelVerdict:
        """Ask the model; the excerpt is redacted and delimited before it leaves the process.

        Raises :class:`ModelUnavailable` (or its subclass :class:`ModelAnswerUnusable`)
        when no usable answer arrives within the budget; never returns a guess.
        """
        prompt_log = render_log(excerpt, max_chars=self._max_log_chars)
        messages = build_messages(prompt_log, rules_hint)
        started = time.monotonic()
        try:
            async with asyncio.timeout(self._total_timeout):
                completion = await self._create(messages)
        except (openai.OpenAIError, TimeoutError) as exc:
            MODEL_CALLS.labels(outcome="unavailable").inc()
            log.warning(
                "model_unavailable", model=self.model, error=type(exc).__name__, detail=str(exc)[:200]
            )
            raise ModelUnavailable(f"{type(exc).__name__}: {exc}") from exc
        prompt_tokens, completion_tokens = _usage(completion)
        MODEL_TOKENS.labels(kind="prompt").inc(prompt_tokens)
        MODEL_TOKENS.labels(kind="completion").inc(completion_tokens)
        try:
            verdict = _verdict(completion, prompt_log.line_numbers, prompt_tokens, completion_tokens)
        except ModelAnswerInvalid as exc:
            MODEL_CALLS.labels(outcome="invalid_answer").inc()
            log.warning("model_answer_unusable", model=self.model, reason=str(exc)[:200])
            raise ModelAnswerUnusable(str(exc)) from exc
        MODEL_CALLS.labels(outcome="ok").inc()
        log.info(
            "model_classified",
            model=verdict.model,
            category=verdict.category.value,
            risk=verdict.risk,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            seconds=round(time.monotonic() - started, 3),
        )
        return verdict


def _usage(completion: ChatCompletion) -> tuple[int, int]:
    usage = completion.usage
    if usage is None:
        return 0, 0
    return max(0, usage.prompt_tokens or 0), max(0, usage.completion_tokens or 0)


def _verdict(
    completion: ChatCompletion, known_lines: frozenset[int], prompt_tokens: int, completion_tokens: int
) -> ModelVerdict:
    if not completion.choices:
        raise ModelAnswerInvalid("no choices in the answer")
    choice = completion.choices[0]
    if choice.message.refusal:
        raise ModelAnswerInvalid("the model refused")
    if choice.finish_reason not in (None, "stop"):
        raise ModelAnswerInvalid(f"answer ended with finish_reason={choice.finish_reason}")
    return verdict_from_content(
        choice.message.content,
        known_lines=known_lines,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        model=completion.model or "",
    )
