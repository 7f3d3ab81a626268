"""A future or malformed ``schema_version`` is a decode error, dead-lettered once with a reason.

A newer service may publish version 2 before this reader knows it, and JSON lets anyone
write ``null``, a string or a list there. Retrying cannot make such bytes readable, so
each must go to the dead letters on its first delivery, saying why, and never reach the
handler; the events around it are handled as usual.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from medic.bus import Bus, Delivery
from medic.events import (
    Event,
    EventDecodeError,
    FailureDetected,
    FailureDetectedPayload,
    decode_event,
    derive_failure_id,
    encode_event,
    utc_now,
)
from tests.waiting import wait_for, wait_until_caught_up

BAD_VERSIONS: list[Any] = [2, None, "1", "two", [1], {"v": 1}, True, 1.5, -3]


def failure(run_id: int) -> FailureDetected:
    return FailureDetected(
        failure_id=derive_failure_id("acme/web", run_id, 1),
        actor="monitor",
        payload=FailureDetectedPayload(
            repository="acme/web", run_id=run_id, run_attempt=1, workflow_name="CI", detected_at=utc_now()
        ),
    )


def with_version(run_id: int, version: Any) -> bytes:
    raw = json.loads(encode_event(failure(run_id)))
    raw["schema_version"] = version
    return json.dumps(raw).encode()


@pytest.mark.parametrize("version", BAD_VERSIONS, ids=[repr(v) for v in BAD_VERSIONS])
def test_a_bad_version_is_the_decode_error_naming_schema_version(version: Any) -> None:
    with pytest.raises(EventDecodeError, match="schema_version"):
        decode_event(with_version(1, version))


def test_a_future_version_says_a_newer_writer_made_it() -> None:
    with pytest.raises(EventDecodeError, match="schema_version 2 is newer than this reader"):
        decode_event(with_version(1, 2))


def test_a_missing_version_is_version_one() -> None:
    raw = json.loads(encode_event(failure(1)))
    del raw["schema_version"]
    assert decode_event(json.dumps(raw)).schema_version == 1


async def test_each_bad_version_is_dead_lettered_once_with_its_reason(bus: Bus) -> None:
    handled: list[int] = []

    async def handle(event: Event, delivery: Delivery) -> None:
        handled.append(event.payload.run_id)  # type: ignore[union-attr]

    sub = bus.subscribe("svc", handle, max_deliver=5)
    await sub.start()
    subject = bus.topology.subject("FailureDetected")
    await bus.publish(failure(1))
    for run_id, version in enumerate(BAD_VERSIONS, start=100):
        await bus.js.publish(subject, with_version(run_id, version), stream=bus.topology.stream)
    await bus.publish(failure(2))

    await wait_until_caught_up(bus, "svc")
    dlq_info = await bus.js.stream_info(bus.topology.dlq_stream)
    await wait_for(lambda: len(handled) == 2, what="the two good events are handled")
    consumer = await bus.js.consumer_info(bus.topology.stream, "svc")
    await sub.stop()

    assert sorted(handled) == [1, 2]
    assert consumer.num_redelivered == 0, "a bad version was retried"
    assert dlq_info.state.messages == len(BAD_VERSIONS)
    dlq = await bus.js.pull_subscribe(bus.topology.dlq_subject("svc"), stream=bus.topology.dlq_stream)
    dead = await dlq.fetch(len(BAD_VERSIONS), timeout=10)
    by_version = {repr(json.loads(m.data)["schema_version"]): m.headers or {} for m in dead}
    assert sorted(by_version) == sorted(repr(v) for v in BAD_VERSIONS)
    for version, headers in by_version.items():
        assert headers["Medic-Num-Delivered"] == "1", version
        assert headers["Medic-Error"].startswith("EventDecodeError"), (version, headers["Medic-Error"])
        assert "schema_version" in headers["Medic-Error"], version
