"""One failure is one trace: the W3C trace context rides in NATS headers from hop to hop."""

from __future__ import annotations

import asyncio

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

from medic.bus import Bus, Delivery
from medic.events import (
    ActionKind,
    AnalysisCompleted,
    AnalysisCompletedPayload,
    AnalysisMethod,
    Category,
    Event,
    FailureDetected,
    FailureDetectedPayload,
    ProposedAction,
    utc_now,
)


class Collected(SpanExporter):
    """The spans, as an OTLP exporter would send them to Jaeger."""

    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []

    def export(self, spans: object) -> SpanExportResult:
        self.spans.extend(spans)  # type: ignore[arg-type]
        return SpanExportResult.SUCCESS


async def test_a_handler_and_what_it_publishes_stay_in_the_publishers_trace(bus: Bus) -> None:
    collected = Collected()
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):  # nothing set yet in this process: set the SDK's
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    provider.add_span_processor(SimpleSpanProcessor(collected))
    tracer = trace.get_tracer("test")
    done = asyncio.Event()

    async def analyzer(event: Event, delivery: Delivery) -> None:
        assert isinstance(event, FailureDetected)
        await bus.publish(
            AnalysisCompleted(
                failure_id=event.failure_id,
                causation_id=event.event_id,
                actor="analyzer",
                payload=AnalysisCompletedPayload(
                    repository="acme/web",
                    run_id=1,
                    run_attempt=1,
                    category=Category.TIMEOUT,
                    risk=3,
                    confidence=0.9,
                    proposed_action=ProposedAction(kind=ActionKind.RERUN_FAILED_JOBS),
                    method=AnalysisMethod.RULES,
                    fingerprint="f",
                ),
            )
        )

    async def gate(event: Event, delivery: Delivery) -> None:
        done.set()

    analyzer_sub = bus.subscribe("analyzer", analyzer, event_types=["FailureDetected"])
    gate_sub = bus.subscribe("safety-gate", gate, event_types=["AnalysisCompleted"])
    await analyzer_sub.start()
    await gate_sub.start()
    with tracer.start_as_current_span("webhook received") as root:
        await bus.publish(
            FailureDetected(
                failure_id="f-1",
                actor="monitor",
                payload=FailureDetectedPayload(
                    repository="acme/web", run_id=1, run_attempt=1, workflow_name="CI", detected_at=utc_now()
                ),
            )
        )
    await asyncio.wait_for(done.wait(), timeout=10)
    await analyzer_sub.stop()
    await gate_sub.stop()

    trace_id = root.get_span_context().trace_id
    handled = {s.name: s for s in collected.spans if s.context.trace_id == trace_id}
    assert {"analyzer handle FailureDetected", "safety-gate handle AnalysisCompleted"} <= set(handled), [
        (s.name, s.context.trace_id == trace_id) for s in collected.spans
    ]
