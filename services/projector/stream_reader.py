"""Reading the whole event stream in large batches, for a replay.

nats-py's ``PullSubscription.fetch`` spends about 70 µs of CPU per message (a task and a
uuid per message, the metadata parsed into dataclasses): more than decoding and
projecting the event. A replay needs none of it. It opens an ephemeral consumer that
expects no acks, asks the server for large batches on a plain subscription, keeps two
requests in flight so the stream never waits for the reader, and takes the stream
sequence, pending count and time stamp straight from each message's reply subject.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncGenerator
from datetime import UTC, datetime
from typing import NamedTuple

from nats.aio.msg import Msg
from nats.js import api as js_api

from medic.bus import Bus

REQUEST_EXPIRES_SECONDS = 30.0
IDLE_SECONDS = 10.0
"""With requests outstanding and nothing arriving this long, ask the server what is left."""


class StreamMessage(NamedTuple):
    seq: int
    stamped: datetime
    data: bytes


class ReadGap(Exception):
    """A message of the consumer never arrived (dropped as a slow consumer): the replay would
    silently lack it, so it stops instead."""


def position(reply: str) -> tuple[int, int, int, datetime]:
    """Stream sequence, consumer sequence, messages still pending and time stamp, from a
    JetStream reply subject.

    The common 9-token form is split here; any other (with a domain) goes through nats-py.
    The time is computed as nats-py computes ``metadata.timestamp`` for the live projector,
    so an unreadable message gets the same time in both.
    """
    tokens = reply.split(".")
    if len(tokens) == 9 and tokens[0] == "$JS" and tokens[1] == "ACK":
        stamped = datetime.fromtimestamp(int(tokens[7]) / 1_000_000_000.0, UTC)
        return int(tokens[5]), int(tokens[6]), int(tokens[8]), stamped
    meta = Msg.Metadata._from_reply(reply)
    return meta.sequence.stream, meta.sequence.consumer, meta.num_pending, meta.timestamp


async def read_stream(bus: Bus, *, batch: int) -> AsyncGenerator[list[StreamMessage], None]:
    """Every event message from sequence 1 up to the stream's end when reached, in order."""
    stream = bus.topology.stream
    if (await bus.js.stream_info(stream)).state.messages == 0:
        return
    name = f"replay_{uuid.uuid4().hex[:16]}"
    config = js_api.ConsumerConfig(
        name=name,
        ack_policy=js_api.AckPolicy.NONE,
        deliver_policy=js_api.DeliverPolicy.ALL,
        filter_subject=bus.topology.events_wildcard,
        inactive_threshold=60.0,
        mem_storage=True,
    )
    consumer = await bus.js.add_consumer(stream, config)
    try:
        if consumer.num_pending:
            async for chunk in _pull(bus, stream, name, batch=batch):
                yield chunk
    finally:
        with contextlib.suppress(Exception):
            await bus.js.delete_consumer(stream, name)


async def _pull(
    bus: Bus, stream: str, consumer: str, *, batch: int
) -> AsyncGenerator[list[StreamMessage], None]:
    prefix = getattr(bus.js, "_prefix", "$JS.API")  # the context's API prefix (a domain changes it)
    next_subject = f"{prefix}.CONSUMER.MSG.NEXT.{stream}.{consumer}"
    request = json.dumps({"batch": batch, "expires": int(REQUEST_EXPIRES_SECONDS * 1e9)}).encode()
    inbox = bus.nc.new_inbox()
    arrived = asyncio.Event()
    buffer: list[StreamMessage] = []
    ended = lapsed = False
    gap: ReadGap | None = None
    last = 0

    async def on_message(msg: Msg) -> None:
        nonlocal ended, lapsed, gap, last
        if msg.reply:
            seq, delivered, pending, stamped = position(msg.reply)
            if delivered != last + 1 and gap is None:
                gap = ReadGap(f"consumer message {last + 1} never arrived (next was {delivered})")
            last = delivered
            buffer.append(StreamMessage(seq, stamped, msg.data))
            ended = ended or pending == 0
            if ended or len(buffer) >= batch:
                arrived.set()
        else:  # a status: a request expired (or was cut short); the loop asks again
            lapsed = True
            arrived.set()

    sub = await bus.nc.subscribe(
        inbox, cb=on_message, pending_msgs_limit=16 * batch + 1024, pending_bytes_limit=1 << 30
    )
    try:
        requested = received = 0
        while True:
            while not ended and requested - received < 2 * batch:
                await bus.nc.publish(next_subject, request, reply=inbox)
                requested += batch
            try:
                await asyncio.wait_for(arrived.wait(), timeout=IDLE_SECONDS)
            except TimeoutError:
                if not buffer:
                    info = await bus.js.consumer_info(stream, consumer)
                    if not info.num_pending:
                        return
                    requested = received  # the requests lapsed: ask again
                    continue
            arrived.clear()
            if gap is not None:
                raise gap
            chunk, buffer[:] = buffer[:], []
            received += len(chunk)
            if lapsed:
                lapsed, requested = False, received
            if chunk:
                yield chunk
            if ended and not buffer:
                return
    finally:
        with contextlib.suppress(Exception):
            await sub.unsubscribe()
