"""What a handler's span tells Jaeger: a deferral is a wait (an attribute), a failure is an error."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from medic.bus import Bus, Deferred, Delivery
from medic.events import Event
from tests.integration.test_bus import failure


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):  # nothing configured telemetry in this process yet
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield exporter
    exporter.shutdown()  # the processor stays on the provider; a shut exporter drops what it gets


async def test_a_deferral_is_an_attribute_and_a_failure_an_error_with_its_exception(
    bus: Bus, spans: InMemorySpanExporter
) -> None:
    seen: list[int] = []

    async def handle(event: Event, delivery: Delivery) -> None:
        seen.append(delivery.num_delivered)
        if delivery.num_delivered == 1:
            raise Deferred("not yet", delay_seconds=0.1)
        if delivery.num_delivered == 2:
            raise RuntimeError("broken for a while")

    sub = bus.subscribe("svc", handle, max_deliver=5)
    await sub.start()
    await bus.publish(failure())
    for _ in range(200):
        if len(seen) >= 3:
            break
        await asyncio.sleep(0.05)
    await sub.stop()
    mine = [s for s in spans.get_finished_spans() if s.name == "svc handle FailureDetected"]
    assert len(mine) == 3, [s.name for s in spans.get_finished_spans()]
    deferred, failed, done = mine
    assert deferred.attributes is not None and deferred.attributes["medic.deferred_seconds"] == 0.1
    assert deferred.status.status_code is trace.StatusCode.UNSET
    assert not deferred.events  # no exception, no traceback formatted for a wait
    assert failed.status.status_code is trace.StatusCode.ERROR
    assert [e.name for e in failed.events] == ["exception"]
    assert failed.events[0].attributes is not None
    assert failed.events[0].attributes["exception.message"] == "broken for a while"
    assert done.status.status_code is trace.StatusCode.UNSET and not done.events
