"""Traces on the wire: the real OTLP/HTTP exporter sends protobuf to a receiver in this test,
which decodes it with ``opentelemetry-proto``. One simulated failure is one trace: monitor,
analyzer, safety-gate, executor and projector share its trace id, and the HTTP calls to
(the sandbox) GitHub and the database calls sit inside it. Log lines carry the trace id and
the failure id."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import structlog
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from medic.bus import Bus, Delivery, Topology
from medic.events import Event, FailureDetected, FailureDetectedPayload, utc_now
from medic.telemetry import add_trace_context, instrument_libraries, logger, uninstrument_libraries
from tests.pipeline import running_pipeline

pytestmark = pytest.mark.e2e
PIPELINE_SERVICES = {"monitor-intake", "analyzer", "safety-gate", "executor", "projector"}


@dataclass
class OtlpReceiver:
    """A collector's OTLP/HTTP endpoint, reduced to what the test reads: the decoded spans."""

    requests: list[ExportTraceServiceRequest] = field(default_factory=list)
    content_types: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def spans(self) -> list[Span]:
        with self.lock:
            return [
                span
                for request in self.requests
                for resource_spans in request.resource_spans
                for scope_spans in resource_spans.scope_spans
                for span in scope_spans.spans
            ]


@pytest.fixture
def receiver() -> Iterator[tuple[OtlpReceiver, str]]:
    collected = OtlpReceiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            if self.path != "/v1/traces":
                self.send_response(404)
                self.end_headers()
                return
            request = ExportTraceServiceRequest.FromString(body)  # raises on anything but OTLP protobuf
            with collected.lock:
                collected.requests.append(request)
                collected.content_types.add(self.headers.get("content-type", ""))
            answer = ExportTraceServiceResponse().SerializeToString()
            self.send_response(200)
            self.send_header("content-type", "application/x-protobuf")
            self.send_header("content-length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield collected, f"http://127.0.0.1:{server.server_address[1]}/v1/traces"
    server.shutdown()
    thread.join()


@pytest.fixture
def exporting(receiver: tuple[OtlpReceiver, str]) -> Iterator[tuple[OtlpReceiver, BatchSpanProcessor]]:
    """The SDK provider with the real OTLP/HTTP exporter, and the libraries instrumented."""
    collected, endpoint = receiver
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    processor = BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint), schedule_delay_millis=200)
    provider.add_span_processor(processor)
    instrument_libraries()
    try:
        yield collected, processor
    finally:
        uninstrument_libraries()
        processor.shutdown()


def _attr(span: Span, key: str) -> str | None:
    for attribute in span.attributes:
        if attribute.key == key:
            return str(attribute.value.string_value)
    return None


def _ancestors(span: Span, by_id: dict[bytes, Span]) -> Iterator[Span]:
    parent = by_id.get(span.parent_span_id)
    while parent is not None:
        yield parent
        parent = by_id.get(parent.parent_span_id)


async def test_one_failure_is_one_trace_on_the_wire(
    exporting: tuple[OtlpReceiver, BatchSpanProcessor],
    nats_url: str,
    database_url: str,
    topology: Topology,
    db_schema: str,
) -> None:
    collected, processor = exporting
    async with running_pipeline(
        nats_url=nats_url, database_url=database_url, topology=topology, db_schema=db_schema
    ) as pipeline:
        answer = await pipeline.http.post(  # a transient kind: the gate lets the executor re-run it
            f"{pipeline.sandbox_url}/_sandbox/simulate", json={"failures": 1, "scenarios": ["network_error"]}
        )
        answer.raise_for_status()
        await pipeline.wait_settled(1, within=90)
        failures = (await pipeline.http.get(f"{pipeline.url}/api/failures")).json()["items"]
        sandbox_github = pipeline.sandbox_url
    assert len(failures) == 1
    failure_id = failures[0]["failure_id"]
    assert failures[0]["state"] == "remediated", failures[0]
    await asyncio.to_thread(processor.force_flush)

    assert collected.content_types == {"application/x-protobuf"}
    spans = collected.spans()
    webhook_served = [
        s for s in spans if s.kind == Span.SPAN_KIND_SERVER and _attr(s, "http.route") == "/webhooks/github"
    ]
    assert webhook_served, "FastAPI's instrumentation traced the webhook"
    handling = [s for s in spans if _attr(s, "medic.failure_id") == failure_id]
    trace_ids = {s.trace_id for s in handling}
    assert len(trace_ids) == 1, f"the failure's handlers are in {len(trace_ids)} traces"
    (trace_id,) = trace_ids
    in_trace = [s for s in spans if s.trace_id == trace_id]
    by_id = {s.span_id: s for s in in_trace}
    services = {_attr(s, "medic.service") for s in in_trace} - {None}
    assert services >= PIPELINE_SERVICES, services
    assert any(s.trace_id == trace_id for s in webhook_served), "the trace starts at the webhook"

    github_calls = [
        s
        for s in in_trace
        if s.kind == Span.SPAN_KIND_CLIENT
        and (_attr(s, "url.full") or _attr(s, "http.url") or "").startswith(sandbox_github)
    ]
    callers = {
        _attr(ancestor, "medic.service")
        for call in github_calls
        for ancestor in _ancestors(call, by_id)
        if _attr(ancestor, "medic.service")
    }
    assert {"monitor-intake", "executor"} <= callers, callers  # fetched the run, then re-ran its jobs
    database_calls = [
        s
        for s in in_trace
        if _attr(s, "db.system") == "postgresql" or _attr(s, "db.system.name") == "postgresql"
    ]
    assert any(
        _attr(a, "medic.service") == "projector" for call in database_calls for a in _ancestors(call, by_id)
    )


async def test_log_lines_carry_the_trace_and_the_failure(bus: Bus) -> None:
    captured = structlog.testing.LogCapture()
    structlog.configure(
        processors=[structlog.contextvars.merge_contextvars, add_trace_context, captured],
        cache_logger_on_first_use=False,
    )
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        trace.set_tracer_provider(TracerProvider())
    handled = asyncio.Event()
    seen: dict[str, str] = {}

    async def analyzer(event: Event, delivery: Delivery) -> None:
        context = trace.get_current_span().get_span_context()
        seen["trace_id"] = format(context.trace_id, "032x")
        logger("test").info("analysing")
        handled.set()

    sub = bus.subscribe("analyzer", analyzer, event_types=["FailureDetected"])
    await sub.start()
    try:
        await bus.publish(
            FailureDetected(
                failure_id="f-logs-1",
                actor="monitor",
                payload=FailureDetectedPayload(
                    repository="acme/web", run_id=7, run_attempt=1, workflow_name="CI", detected_at=utc_now()
                ),
            )
        )
        await asyncio.wait_for(handled.wait(), timeout=20)
    finally:
        await sub.stop()
        structlog.reset_defaults()
    (line,) = [entry for entry in captured.entries if entry["event"] == "analysing"]
    assert line["failure_id"] == "f-logs-1"
    assert line["trace_id"] == seen["trace_id"] != "0" * 32
