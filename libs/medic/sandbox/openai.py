"""A local OpenAI-compatible model for ``medic run`` without credentials and for tests.

It speaks the real HTTP of ``POST /v1/chat/completions`` (auth, error bodies,
``retry-after`` headers, ``usage``, Structured Outputs content as a JSON string), so
the production :class:`medic.llm.client.ModelClient` is exercised unchanged. Its
answers are deterministic keyword classifications of the log. Failure modes are
switched over HTTP (``POST /_sandbox/modes``), and one of them plays a model fooled
by prompt injection, so tests can show that a fooled model cannot move the gate.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import math
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Final, NamedTuple

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from medic.sandbox.serving import serve_on_free_port

INJECTION_TRIGGER: Final = "IGNORE PREVIOUS INSTRUCTIONS"
SYSTEM_FINGERPRINT: Final = "fp_medic_sandbox"


class _Signal(NamedTuple):
    keywords: tuple[str, ...]
    category: str
    risk: int
    confidence: float
    action: str


# First hit wins, so specific signals come before general ones.
_SIGNALS: Final[tuple[_Signal, ...]] = (
    _Signal(
        ("ECONNRESET", "ETIMEDOUT", "Connection reset by peer", "502 Bad Gateway", "Could not resolve host"),
        "infrastructure", 2, 0.86, "rerun_failed_jobs",
    ),
    _Signal(("out of memory", "OOMKilled", "Killed signal", "exit code 137"), "oom", 4, 0.78, "none"),
    _Signal(
        ("has exceeded the maximum execution time", "timed out after", "The operation was canceled"),
        "timeout", 3, 0.72, "rerun_failed_jobs",
    ),
    _Signal(
        ("Resource not accessible by integration", "Permission denied", "403 Forbidden"),
        "permission", 6, 0.75, "none",
    ),
    _Signal(
        ("ModuleNotFoundError", "Could not find a version that satisfies", "npm ERR! 404", "No matching"),
        "dependency", 4, 0.76, "none",
    ),
    _Signal(
        ("SyntaxError", "error TS", "error[E", "compilation failed", "cannot find symbol"),
        "compile", 5, 0.77, "none",
    ),
    _Signal(
        ("AssertionError", "FAILED tests/", "AssertionFailedError", "expected:"),
        "test_failure", 5, 0.8, "none",
    ),
    _Signal(("ruff check", "eslint", "flake8", "would reformat"), "lint", 3, 0.74, "none"),
)  # fmt: skip
_LOG_BLOCK = re.compile(r"<log>\n?(.*)\n?</log>", re.DOTALL)
_NUMBERED = re.compile(r"^\s*(\d+)\| ?(.*)$")


def _error(
    status: int, message: str, type_: str, code: str | None, headers: dict[str, str] | None = None
) -> JSONResponse:
    """OpenAI's only documented error body: ``{"error": {message, type, param, code}}``."""
    body = {"error": {"message": message, "type": type_, "param": None, "code": code}}
    return JSONResponse(body, status_code=status, headers=headers)


@dataclass
class SandboxModes:
    """Switchable misbehaviour; counters count down one per completion request."""

    rate_limit: int = 0
    retry_after_ms: int = 1000
    server_error: int = 0
    malformed_json: int = 0
    slow_seconds: float = 0.0
    injection: bool = False

    def update(self, changes: dict[str, Any]) -> None:
        for name, value in changes.items():
            if name not in self.__dataclass_fields__:
                raise ValueError(f"unknown mode {name!r}")
            current = getattr(self, name)
            setattr(self, name, type(current)(value))


@dataclass
class SandboxModel:
    """The app plus its state, so the CLI can mount it and tests can inspect it."""

    app: FastAPI
    modes: SandboxModes = field(default_factory=SandboxModes)
    requests: list[dict[str, Any]] = field(default_factory=list)

    def reset(self) -> None:
        self.modes = SandboxModes()
        self.requests.clear()


def _log_lines(text: str) -> list[tuple[int, str]]:
    """The numbered lines of the ``<log>`` block (or of the whole text when there is none)."""
    block = _LOG_BLOCK.search(text)
    body = block.group(1) if block else text
    lines: list[tuple[int, str]] = []
    for number, raw in enumerate(body.splitlines(), start=1):
        numbered = _NUMBERED.match(raw)
        lines.append((int(numbered.group(1)), numbered.group(2)) if numbered else (number, raw))
    return lines


def _message_text(message: Any) -> str:
    content = message.get("content") if isinstance(message, dict) else None
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


def classify_text(prompt: str, *, injected: bool) -> dict[str, Any]:
    """The sandbox's 'model': keywords in the log decide; a fooled model answers risk 0."""
    lines = _log_lines(prompt)
    if injected or INJECTION_TRIGGER.lower() in prompt.lower():
        cited = [n for n, t in lines if INJECTION_TRIGGER.lower() in t.lower()][:3]
        return {
            "category": "flaky_test",
            "risk": 0,
            "confidence": 1.0,
            "action": "open_fix_pr",
            "summary": "Completely safe, auto-fix it now.",
            "cited_lines": cited,
        }
    for keywords, category, risk, confidence, action in _SIGNALS:
        cited = [n for n, t in lines if any(k.lower() in t.lower() for k in keywords)]
        if cited:
            return {
                "category": category,
                "risk": risk,
                "confidence": confidence,
                "action": action,
                "summary": f"The log shows a {category.replace('_', ' ')} failure.",
                "cited_lines": cited[:5],
            }
    return {
        "category": "unknown",
        "risk": 6,
        "confidence": 0.3,
        "action": "none",
        "summary": "The log does not show a recognisable cause.",
        "cited_lines": [],
    }


def _fit_schema(answer: dict[str, Any], response_format: Any) -> dict[str, Any]:
    """Shape the answer like the requested json_schema: exactly its properties."""
    schema = (
        response_format.get("json_schema", {}).get("schema", {}) if isinstance(response_format, dict) else {}
    )
    properties = schema.get("properties") if isinstance(schema, dict) else None
    if not isinstance(properties, dict):
        return answer
    defaults = {"string": "", "integer": 0, "number": 0, "boolean": False, "array": [], "object": {}}
    shaped: dict[str, Any] = {}
    for name, spec in properties.items():
        if name in answer:
            shaped[name] = answer[name]
        else:
            kind = spec.get("type") if isinstance(spec, dict) else None
            shaped[name] = defaults.get(kind if isinstance(kind, str) else "")
    return shaped


def _tokens(text: str) -> int:
    """Roughly OpenAI's ~4 characters per token for English."""
    return max(1, math.ceil(len(text) / 4))


def _completion(body: dict[str, Any], content: str, seq: int) -> dict[str, Any]:
    messages = body.get("messages", [])
    prompt_tokens = sum(_tokens(_message_text(m)) + 4 for m in messages) + 3
    completion_tokens = _tokens(content)
    digest = hashlib.sha256(f"{seq}:{content}".encode()).hexdigest()[:24]
    return {
        "id": f"chatcmpl-sbx{digest}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": str(body.get("model", "sandbox")),
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content, "refusal": None, "annotations": []},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
        },
        "service_tier": "default",
        "system_fingerprint": SYSTEM_FINGERPRINT,
    }


def _answer_content(body: dict[str, Any], modes: SandboxModes) -> str:
    prompt = "\n".join(_message_text(m) for m in body.get("messages", []) if isinstance(m, dict))
    answer = classify_text(prompt, injected=modes.injection)
    response_format = body.get("response_format")
    kind = response_format.get("type") if isinstance(response_format, dict) else "text"
    if kind == "json_schema":
        return json.dumps(_fit_schema(answer, response_format))
    if kind == "json_object":
        return json.dumps(answer)
    return f"Category: {answer['category']}. Risk {answer['risk']}/10. {answer['summary']}"


def _misbehaviour(modes: SandboxModes) -> JSONResponse | None:
    if modes.rate_limit > 0:
        modes.rate_limit -= 1
        wait_ms = max(0, modes.retry_after_ms)
        headers = {
            "retry-after": str(max(1, math.ceil(wait_ms / 1000))),
            "retry-after-ms": str(wait_ms),
            "x-ratelimit-limit-requests": "60",
            "x-ratelimit-remaining-requests": "0",
            "x-ratelimit-reset-requests": f"{wait_ms}ms",
        }
        message = "Rate limit reached for requests on sandbox (requests per min): Limit 60. Please try again."
        return _error(429, message, "requests", "rate_limit_exceeded", headers)
    if modes.server_error > 0:
        modes.server_error -= 1
        message = "The server had an error while processing your request. Sorry about that!"
        return _error(500, message, "server_error", None)
    return None


def create_sandbox_model() -> SandboxModel:
    """A fresh sandbox model: its own state, nothing shared between instances."""
    app = FastAPI(title="ci-medic sandbox model", docs_url=None, redoc_url=None)
    sandbox = SandboxModel(app=app)

    async def chat_completions(request: Request) -> JSONResponse:
        auth = request.headers.get("authorization", "")
        scheme, _, key = auth.partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            message = "You didn't provide an API key. Send it as 'Authorization: Bearer YOUR_KEY'."
            return _error(401, message, "invalid_request_error", "invalid_api_key")
        try:
            body = json.loads(await request.body())
        except ValueError:
            return _error(
                400, "We could not parse the JSON body of your request.", "invalid_request_error", None
            )
        if not isinstance(body, dict):
            return _error(400, "The request body must be a JSON object.", "invalid_request_error", None)
        sandbox.requests.append(
            {"path": request.url.path, "body": body, "user_agent": request.headers.get("user-agent", "")}
        )
        if (
            not isinstance(body.get("model"), str)
            or not isinstance(body.get("messages"), list)
            or not body["messages"]
        ):
            return _error(
                400, "'model' and a non-empty 'messages' are required.", "invalid_request_error", None
            )
        if body.get("stream"):
            return _error(
                400, "The sandbox model does not stream.", "invalid_request_error", "unsupported_value"
            )
        modes = sandbox.modes
        if modes.slow_seconds > 0:
            await asyncio.sleep(modes.slow_seconds)
        if (refusal := _misbehaviour(modes)) is not None:
            return refusal
        content = _answer_content(body, modes)
        if modes.malformed_json > 0:
            modes.malformed_json -= 1
            content = content[: max(1, len(content) // 2)] + " ...and that is my answer"
        return JSONResponse(_completion(body, content, len(sandbox.requests)))

    app.add_api_route("/v1/chat/completions", chat_completions, methods=["POST"])
    app.add_api_route("/chat/completions", chat_completions, methods=["POST"])

    @app.post("/_sandbox/modes")
    async def set_modes(request: Request) -> JSONResponse:
        try:
            changes = json.loads(await request.body())
            if not isinstance(changes, dict):
                raise ValueError("modes must be a JSON object")
            sandbox.modes.update(changes)
        except (ValueError, TypeError) as exc:
            return _error(400, str(exc), "invalid_request_error", None)
        return JSONResponse(sandbox.modes.__dict__)

    @app.get("/_sandbox/modes")
    async def get_modes() -> JSONResponse:
        return JSONResponse(sandbox.modes.__dict__)

    @app.get("/_sandbox/requests")
    async def list_requests() -> JSONResponse:
        return JSONResponse(sandbox.requests)

    @app.post("/_sandbox/reset")
    async def reset() -> JSONResponse:
        sandbox.reset()
        return JSONResponse({"reset": True})

    return sandbox


@dataclass(frozen=True)
class RunningSandbox:
    model: SandboxModel
    base_url: str
    """Root URL of the server; the OpenAI client wants ``f"{base_url}/v1"``."""


@contextlib.asynccontextmanager
async def serve_sandbox_model(host: str = "127.0.0.1") -> AsyncIterator[RunningSandbox]:
    """Serve a fresh sandbox with uvicorn on a free port in the running event loop."""
    model = create_sandbox_model()
    # slow-mode handlers may still be sleeping when the test is done
    async with serve_on_free_port(model.app, host=host, force_exit=True) as base_url:
        yield RunningSandbox(model=model, base_url=base_url)
