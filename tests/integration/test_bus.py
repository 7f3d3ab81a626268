"""The bus against a real nats-server: dedup, redelivery, dead letters, shared consumers."""

from __future__ import annotations

import asyncio
import contextlib
import json

import pytest

from medic.bus import Bus, Delivery, PermanentError
from medic.events import (
    Event,
    FailureDetected,
    FailureDetectedPayload,
    derive_failure_id,
    utc_now,
)
from tests.waiting import wait_until_caught_up


def failure(run_id: int = 1) -> FailureDetected:
    return FailureDetected(
        failure_id=derive_failure_id("acme/web", run_id, 1),
        actor="monitor",
        payload=FailureDetectedPayload(
            repository="acme/web", run_id=run_id, run_attempt=1, workflow_name="CI", detected_at=utc_now()
        ),
    )


async def wait_until(predicate, within: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + within
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


async def test_publish_is_deduplicated_by_event_id(bus: Bus) -> None:
    event = failure()
    first = await bus.publish(event)
    second = await bus.publish(event)
    assert not first.duplicate
    assert second.duplicate
    info = await bus.js.stream_info(bus.topology.stream)
    assert info.state.messages == 1


async def test_handler_receives_events_and_acks(bus: Bus) -> None:
    seen: list[Event] = []

    async def handle(event: Event, delivery: Delivery) -> None:
        seen.append(event)

    sub = bus.subscribe("svc", handle, event_types=["FailureDetected"])
    await sub.start()
    await bus.publish_many([failure(i) for i in range(1, 21)])
    await wait_until(lambda: len(seen) == 20)
    await sub.stop()
    assert sorted(e.payload.run_id for e in seen) == list(range(1, 21))  # type: ignore[union-attr]
    assert await bus.pending("svc") == 0


async def test_raising_handler_is_redelivered_then_succeeds(bus: Bus) -> None:
    attempts: list[int] = []

    async def flaky(event: Event, delivery: Delivery) -> None:
        attempts.append(delivery.num_delivered)
        if delivery.num_delivered < 3:
            raise RuntimeError("transient")

    sub = bus.subscribe("svc", flaky, max_deliver=5)
    await sub.start()
    await bus.publish(failure())
    await wait_until(lambda: len(attempts) >= 3, within=20)
    await wait_until_caught_up(bus, "svc")  # the third attempt was acked: nothing more will come
    await sub.stop()
    assert attempts == [1, 2, 3]
    assert await bus.pending("svc") == 0


async def test_past_max_deliver_the_event_lands_in_dead_letters(bus: Bus) -> None:
    attempts: list[int] = []

    async def always_fails(event: Event, delivery: Delivery) -> None:
        attempts.append(delivery.num_delivered)
        raise RuntimeError("database is on fire")

    sub = bus.subscribe("svc", always_fails, max_deliver=3)
    await sub.start()
    event = failure()
    await bus.publish(event)
    dlq = await bus.js.pull_subscribe(bus.topology.dlq_subject("svc"), stream=bus.topology.dlq_stream)
    msgs = await dlq.fetch(1, timeout=30)
    await sub.stop()
    assert attempts == [1, 2, 3]
    dead = msgs[0]
    assert json.loads(dead.data)["event_id"] == event.event_id
    assert dead.headers is not None
    assert "database is on fire" in dead.headers["Medic-Error"]
    assert dead.headers["Medic-Num-Delivered"] == "3"


async def test_poison_message_goes_to_dead_letters_at_once(bus: Bus) -> None:
    calls = 0

    async def handle(event: Event, delivery: Delivery) -> None:
        nonlocal calls
        calls += 1

    sub = bus.subscribe("svc", handle)
    await sub.start()
    await bus.js.publish(bus.topology.subject("FailureDetected"), b"{not json", stream=bus.topology.stream)
    await bus.js.publish(
        bus.topology.subject("FailureDetected"),
        json.dumps({"event_type": "FailureDetected", "schema_version": 1}).encode(),
        stream=bus.topology.stream,
    )
    dlq = await bus.js.pull_subscribe(bus.topology.dlq_subject("svc"), stream=bus.topology.dlq_stream)
    msgs = await dlq.fetch(2, timeout=10)
    await sub.stop()
    assert calls == 0
    errors = sorted(m.headers["Medic-Error"] for m in msgs if m.headers)
    assert errors[0].startswith("EventDecodeError")
    assert any("not JSON" in e for e in errors)


async def test_permanent_error_is_not_retried(bus: Bus) -> None:
    attempts = 0

    async def refuse(event: Event, delivery: Delivery) -> None:
        nonlocal attempts
        attempts += 1
        raise PermanentError("repository not configured")

    sub = bus.subscribe("svc", refuse, max_deliver=5)
    await sub.start()
    await bus.publish(failure())
    dlq = await bus.js.pull_subscribe(bus.topology.dlq_subject("svc"), stream=bus.topology.dlq_stream)
    await dlq.fetch(1, timeout=10)
    await sub.stop()
    assert attempts == 1


async def test_replicas_share_one_durable_consumer(bus: Bus) -> None:
    by_replica: dict[str, list[int]] = {"a": [], "b": []}
    both_started = asyncio.Event()

    def handler_for(name: str):  # type: ignore[no-untyped-def]
        async def handle(event: Event, delivery: Delivery) -> None:
            by_replica[name].append(event.payload.run_id)  # type: ignore[union-attr]
            if by_replica["a"] and by_replica["b"]:
                both_started.set()
            # a replica holds its first messages until the other has some: neither can take all
            # forty however the machine schedules them (a deadline bounds a broken share)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(both_started.wait(), timeout=20)

        return handle

    a = bus.subscribe("svc", handler_for("a"), concurrency=2)
    b = bus.subscribe("svc", handler_for("b"), concurrency=2)
    await a.start()
    await b.start()
    await bus.publish_many([failure(i) for i in range(1, 41)])
    await wait_until(lambda: len(by_replica["a"]) + len(by_replica["b"]) >= 40, within=30)
    await wait_until_caught_up(bus, "svc")  # every message acked: no late duplicate can follow
    await a.stop()
    await b.stop()
    everything = by_replica["a"] + by_replica["b"]
    assert sorted(everything) == list(range(1, 41)), "each event handled exactly once"
    assert by_replica["a"] and by_replica["b"], "both replicas did work"


async def test_stream_creation_is_idempotent(bus: Bus) -> None:
    await bus.ensure_streams()
    await bus.ensure_streams()
    info = await bus.js.stream_info(bus.topology.stream)
    assert info.config.subjects == [bus.topology.events_wildcard]


@pytest.mark.parametrize("bad", [b"", b"[]", b"null", b'{"event_type": "Nope"}'])
def test_decode_rejects_malformed(bad: bytes) -> None:
    from medic.events import EventDecodeError, decode_event

    with pytest.raises(EventDecodeError):
        decode_event(bad)


async def test_a_backlog_is_handed_over_in_batches(bus: Bus) -> None:
    batches: list[int] = []
    singles: list[int] = []

    async def one(event: Event, delivery: Delivery) -> None:
        singles.append(event.payload.run_id)  # type: ignore[union-attr]

    async def many(items: list[tuple[Event, Delivery]]) -> None:
        batches.append(len(items))

    await bus.publish_many([failure(i) for i in range(1, 101)])
    sub = bus.subscribe("svc", one, batch_handler=many, max_batch=40)
    await sub.start()
    await wait_until(lambda: sum(batches) + len(singles) >= 100)
    await sub.stop()
    assert max(batches) > 1, batches
    assert sum(batches) + len(singles) == 100
    assert await bus.pending("svc") == 0


async def test_a_failing_batch_falls_back_to_one_by_one_and_isolates_the_bad_event(bus: Bus) -> None:
    handled: list[int] = []

    async def one(event: Event, delivery: Delivery) -> None:
        if event.payload.run_id == 7:  # type: ignore[union-attr]
            raise PermanentError("this one is broken")
        handled.append(event.payload.run_id)  # type: ignore[union-attr]

    async def many(items: list[tuple[Event, Delivery]]) -> None:
        if any(e.payload.run_id == 7 for e, _ in items):  # type: ignore[union-attr]
            raise RuntimeError("batch contains a broken event")
        handled.extend(e.payload.run_id for e, _ in items)  # type: ignore[union-attr]

    await bus.publish_many([failure(i) for i in range(1, 21)])
    sub = bus.subscribe("svc", one, batch_handler=many, max_batch=20)
    await sub.start()
    dlq = await bus.js.pull_subscribe(bus.topology.dlq_subject("svc"), stream=bus.topology.dlq_stream)
    [dead] = await dlq.fetch(1, timeout=10)
    await wait_until(lambda: len(handled) >= 19)
    await sub.stop()
    assert sorted(handled) == [i for i in range(1, 21) if i != 7]
    assert json.loads(dead.data)["payload"]["run_id"] == 7
