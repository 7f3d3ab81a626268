"""The event bus over NATS JetStream.

- One stream holds every event; subjects are ``<prefix>.events.<event_type>``.
- Publishing sets ``Nats-Msg-Id`` to the event id, so the server drops duplicates.
- Each service has one durable pull consumer, shared by all its replicas; messages are
  acked explicitly after the handler's effect is committed.
- The consuming side (ack / nak / dead letter) lives in :mod:`medic.consumer`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import nats
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from nats.js import api as js_api
from nats.js.errors import BadRequestError, BucketNotFoundError
from nats.js.kv import KeyValue

from medic.consumer import (  # re-exported: services import these from the bus
    BatchHandler,
    DecodeError,
    Deferred,
    Delivery,
    Handler,
    PermanentError,
    Subscription,
    backoff_seconds,
)
from medic.events import (
    EVENT_TYPE_NAMES,
    Envelope,
    decode_event,
    encode_event,
    subject_token,
)

if TYPE_CHECKING:
    from medic.config import Settings

from medic.telemetry import (
    CONSUMER_PENDING,
    EVENTS_PUBLISHED,
    inject_headers,
    logger,
)

log = logger(__name__)

__all__ = [
    "BatchHandler",
    "Bucket",
    "Bus",
    "DecodeError",
    "Deferred",
    "Delivery",
    "Handler",
    "PermanentError",
    "Subscription",
    "Topology",
    "backoff_seconds",
    "open_key_value",
]


async def open_key_value(
    js: JetStreamContext, bucket: str, *, history: int = 1, ttl: float | None = None
) -> KeyValue:
    """The bucket if it exists, else a new one: every replica may call this at start."""
    try:
        return await js.key_value(bucket)
    except BucketNotFoundError:
        return await js.create_key_value(bucket=bucket, history=history, ttl=ttl)


class Bucket(StrEnum):
    """Every JetStream key-value bucket and object store, named in one place (suffix of the stream)."""

    LOGS = "LOGS"
    """Object store: log tails too large to ride inside an event (monitor writes, analyzer reads)."""
    ANALYSIS_CACHE = "analysis_cache"
    SLACK_THREADS = "slack_threads"
    """The notifier's Slack thread per failure (parent ts, what was told)."""
    GREEN_LOGS = "green_logs"
    """The last green log of a workflow job, compressed, for the analyzer to compare with (1 day)."""
    APPROVALS = "approvals"
    REMEDIATIONS = "remediations"
    MONITOR_CURSORS = "monitor_cursors"
    MONITOR_DETECTED = "monitor_detected"
    POLICY = "policy"
    """The safety policy's switches, breakers, incident holds and automatic grants."""
    POLICY_BUDGETS = "policy_budgets"
    """Hourly budgets of automatic remediations (expire after a few hours)."""
    MONITOR_SENDERS = "monitor_senders"
    """Repositories that have sent a webhook: the catch-up poll's list."""


@dataclass(frozen=True)
class Topology:
    """Names of the stream and subjects; tests use a fresh one each so they never share state."""

    stream: str = "MEDIC_EVENTS"
    prefix: str = "medic"
    duplicate_window_seconds: float = 120.0
    replicas: int = 1
    """Stream replicas: 3 on a NATS cluster (a node can be lost), 1 on a single server."""

    @classmethod
    def from_settings(cls, settings: Settings) -> Topology:
        return cls(
            stream=settings.stream_name, prefix=settings.subject_prefix, replicas=settings.stream_replicas
        )

    @property
    def events_wildcard(self) -> str:
        return f"{self.prefix}.events.>"

    @property
    def dlq_stream(self) -> str:
        return f"{self.stream}_DLQ"

    def subject(self, event_type: str) -> str:
        return f"{self.prefix}.events.{subject_token(event_type)}"

    def dlq_subject(self, service: str) -> str:
        return f"{self.prefix}.dlq.{service}"

    def bucket(self, which: Bucket) -> str:
        return f"{self.stream}_{which.value}"


class Bus:
    def __init__(self, nc: NATS, topology: Topology) -> None:
        self.nc = nc
        self.js: JetStreamContext = nc.jetstream()
        self.topology = topology

    @classmethod
    async def connect(cls, url: str, topology: Topology | None = None, *, name: str = "medic") -> Bus:
        nc = await nats.connect(url, name=name, max_reconnect_attempts=-1, reconnect_time_wait=0.5)
        bus = cls(nc, topology or Topology())
        await bus.ensure_streams()
        return bus

    async def close(self) -> None:
        """Drain (in-flight acks and publishes finish), but never hang a shutdown on it."""
        if self.nc.is_connected:
            try:
                await asyncio.wait_for(self.nc.drain(), timeout=5)
            except Exception:
                await self.nc.close()

    async def ensure_streams(self) -> None:
        """Create the event and dead-letter streams, or bring their config up to date."""
        t = self.topology
        await self._ensure_stream(
            js_api.StreamConfig(
                name=t.stream,
                subjects=[t.events_wildcard],
                storage=js_api.StorageType.FILE,
                retention=js_api.RetentionPolicy.LIMITS,
                duplicate_window=t.duplicate_window_seconds,
                num_replicas=t.replicas,
            )
        )
        await self._ensure_stream(
            js_api.StreamConfig(
                name=t.dlq_stream,
                subjects=[f"{t.prefix}.dlq.>"],
                storage=js_api.StorageType.FILE,
                duplicate_window=t.duplicate_window_seconds,
                num_replicas=t.replicas,
            )
        )

    async def _ensure_stream(self, config: js_api.StreamConfig) -> None:
        try:
            await self.js.add_stream(config)
        except BadRequestError:
            await self.js.update_stream(config)

    async def publish(self, event: Envelope) -> js_api.PubAck:
        headers = inject_headers(
            {"Nats-Msg-Id": event.event_id, "Medic-Event-Type": event.event_type}  # type: ignore[attr-defined]
        )
        ack = await self.js.publish(
            self.topology.subject(event.event_type),  # type: ignore[attr-defined]
            encode_event(event),
            headers=headers,
            stream=self.topology.stream,
        )
        if not ack.duplicate:
            EVENTS_PUBLISHED.labels(event.event_type).inc()  # type: ignore[attr-defined]
        return ack

    async def publish_many(self, events: Iterable[Envelope], *, window: int = 256) -> list[js_api.PubAck]:
        """Publish with up to ``window`` acks in flight instead of awaiting each in turn."""
        gate = asyncio.Semaphore(window)

        async def one(event: Envelope) -> js_api.PubAck:
            async with gate:
                return await self.publish(event)

        return list(await asyncio.gather(*(one(e) for e in events)))

    def subscribe(
        self,
        service: str,
        handler: Handler,
        *,
        event_types: Sequence[str] = (),
        max_deliver: int = 5,
        concurrency: int = 16,
        ack_wait_seconds: float = 30.0,
        batch_handler: BatchHandler | None = None,
        max_batch: int = 256,
        decode: Callable[[bytes], Any] = decode_event,
        max_deferrals: int = 0,
    ) -> Subscription:
        """The service's durable consumer on the event stream (all events when no types given).

        With ``batch_handler`` a backlog is handed over up to ``max_batch`` events at a time
        (one transaction for many); if a batch fails, its events are retried one by one
        through ``handler``, so one bad event never holds the others back.
        """
        unknown = set(event_types) - set(EVENT_TYPE_NAMES)
        if unknown:
            raise ValueError(f"unknown event types: {sorted(unknown)}")
        t = self.topology
        return Subscription(
            bus=self,
            service=service,
            handler=handler,
            stream=t.stream,
            subjects=tuple(t.subject(n) for n in event_types) or (t.events_wildcard,),
            decode=decode,
            max_deliver=max_deliver,
            concurrency=concurrency,
            ack_wait_seconds=ack_wait_seconds,
            batch_handler=batch_handler,
            max_batch=max_batch,
            max_deferrals=max_deferrals,
        )

    async def ensure_work_stream(self, name: str, subjects: Sequence[str]) -> None:
        """A work-queue stream beside the event log (the monitor's intake, the executor's wait for CI)."""
        await self._ensure_stream(work_stream_config(self.topology, name, subjects))

    def subscribe_work(
        self,
        service: str,
        handler: Callable[[Any, Delivery], Awaitable[None]],
        *,
        stream: str,
        subjects: Sequence[str],
        decode: Callable[[bytes], Any],
        max_deliver: int = 5,
        concurrency: int = 16,
        ack_wait_seconds: float = 30.0,
        max_deferrals: int = 0,
    ) -> Subscription:
        """A durable consumer on a work stream; ``decode`` raises ValueError on bad input."""
        return Subscription(
            bus=self,
            service=service,
            handler=handler,
            stream=stream,
            subjects=tuple(subjects),
            decode=decode,
            max_deliver=max_deliver,
            concurrency=concurrency,
            ack_wait_seconds=ack_wait_seconds,
            max_deferrals=max_deferrals,
        )

    async def pending(self, durable: str, *, stream: str | None = None) -> int:
        """Messages the consumer has not finished (undelivered + unacked); also sets the gauge."""
        info = await self.js.consumer_info(stream or self.topology.stream, durable)
        CONSUMER_PENDING.labels(durable).set(info.num_pending + info.num_ack_pending)
        return int(info.num_pending + info.num_ack_pending)


def work_stream_config(topology: Topology, name: str, subjects: Sequence[str]) -> js_api.StreamConfig:
    """Replicated like the event log: work queued on a lost node would be lost work."""
    return js_api.StreamConfig(
        name=name,
        subjects=list(subjects),
        storage=js_api.StorageType.FILE,
        retention=js_api.RetentionPolicy.WORK_QUEUE,
        duplicate_window=topology.duplicate_window_seconds,
        num_replicas=topology.replicas,
    )
