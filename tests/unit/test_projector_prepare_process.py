"""Entries cross to and from the replay's worker process unchanged."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from medic.events import encode_event
from medic.services.projector.prepare_process import pack, prepare_packed, received_until, unpack
from medic.services.projector.store import prepare
from medic.services.projector.stream_reader import StreamMessage
from medic.services.projector.unapplied import Unreadable
from tests.event_histories import mixed_histories

START = datetime(2025, 1, 1, tzinfo=UTC)
START_NS = int(START.timestamp()) * 1_000_000_000


def _chunk() -> list[StreamMessage]:
    events = mixed_histories(24, start=START)
    messages = [StreamMessage(seq, START_NS, encode_event(e)) for seq, e in enumerate(events, 1)]
    messages.append(StreamMessage(len(messages) + 1, START_NS + 3600 * 1_000_000_000, b"\xff not an event"))
    # an event stamped in another offset: its instant and its offset both survive
    shifted = events[0].model_copy(update={"occurred_at": START.astimezone(timezone(timedelta(hours=5)))})
    messages.append(StreamMessage(len(messages) + 1, START_NS, encode_event(shifted)))
    return messages


def test_unpacked_entries_equal_the_ones_prepared_here() -> None:
    here = prepare(received_until(_chunk(), None)).entries
    assert here is not None
    assert any(e.unapplied is not None for e in here) and any(e.change is not None for e in here)
    back = unpack(pack(here))
    assert back == here
    assert [e.occurred_at.utcoffset() for e in back] == [e.occurred_at.utcoffset() for e in here]


def test_a_message_that_cannot_be_read_takes_the_time_the_stream_stored_it() -> None:
    items = received_until(_chunk(), None)
    assert [at for item, _, at in items if isinstance(item, Unreadable)] == [START + timedelta(hours=1)]


def test_the_worker_leaves_out_what_happened_after_until() -> None:
    chunk = _chunk()
    until = START + timedelta(seconds=45)
    count, packed = prepare_packed(chunk, until)
    wanted = received_until(chunk, until)
    assert 0 < count == len(wanted) < len(chunk)
    assert packed is not None
    assert [e.stream_seq for e in unpack(packed)] == [seq for _, seq, _ in wanted]


def test_a_batch_the_worker_cannot_project_comes_back_without_entries() -> None:
    event = mixed_histories(1, start=START)[0]
    too_big = event.model_copy(update={"payload": event.payload.model_copy(update={"run_id": 2**63})})
    chunk = [
        StreamMessage(1, START_NS, encode_event(event)),
        StreamMessage(2, START_NS, encode_event(too_big)),
    ]
    assert prepare_packed(chunk, None) == (2, None)
