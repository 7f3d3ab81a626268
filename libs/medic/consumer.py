"""A durable pull consumer and the loop that feeds a service's handler.

:meth:`Subscription._settle` is the one place that maps a handler's outcome to
ack / nak-with-backoff / dead-letter. Redelivery decisions come from the server's
``num_delivered``, never from process memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from time import perf_counter
from typing import TYPE_CHECKING, Any

import nats
import structlog
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js import api as js_api
from nats.js.errors import BadRequestError, NotFoundError
from opentelemetry import trace

from medic.events import Event, EventDecodeError
from medic.puller import Puller
from medic.telemetry import (
    DEAD_LETTERS,
    EVENTS_HANDLED,
    HANDLER_SECONDS,
    extract_context,
    logger,
    tracer,
)

if TYPE_CHECKING:
    from medic.bus import Bus

log = logger(__name__)


class PermanentError(Exception):
    """A handler error that retrying cannot fix: the event goes straight to the dead letters."""


async def _traced(span: trace.Span, handling: Awaitable[None]) -> None:
    """Await the handler; its span tells a failure (exception and error status) from a deferral
    (an attribute: how long it waits), which Jaeger would otherwise show as an error with a
    formatted traceback on every look of a wait."""
    try:
        await handling
    except Deferred as exc:
        span.set_attribute("medic.deferred_seconds", exc.delay_seconds)
        raise
    except Exception as exc:
        span.record_exception(exc)
        span.set_status(trace.Status(trace.StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
        raise


class Deferred(Exception):
    """Not now, and not a failure: try again after ``delay_seconds`` (e.g. when GitHub's rate
    limit resets). The redelivery waits that long instead of backing off, so a deferral spends
    one delivery per wait, not a handful of quick retries that would exhaust ``max_deliver``."""

    MAX_DELAY_SECONDS = 3600.0

    def __init__(self, reason: str, *, delay_seconds: float) -> None:
        super().__init__(reason)
        self.delay_seconds = min(max(delay_seconds, 0.1), self.MAX_DELAY_SECONDS)


RATE_LIMIT_DEFERRALS = 48
"""Deferrals a consumer that waits for GitHub allows beyond ``max_deliver``: two days of hourly
resets. A deferral is not a failure, so it must not use up the retries failures need."""


class DecodeError(PermanentError):
    """The message bytes are not what the consumer reads: dead-lettered at once, never retried."""


@dataclass
class Delivery:
    """What a handler may know about the message it handles."""

    stream_seq: int
    num_delivered: int
    msg: Msg

    async def in_progress(self) -> None:
        """Tell the server a long handler is still alive, so the message is not redelivered."""
        await self.msg.in_progress()


Handler = Callable[[Event, Delivery], Awaitable[None]]
BatchHandler = Callable[[list[tuple[Event, Delivery]]], Awaitable[None]]


def backoff_seconds(num_delivered: int, *, base: float = 0.5, cap: float = 30.0) -> float:
    """Exponential backoff with full jitter for the next redelivery."""
    ceiling = min(cap, base * (2 ** max(0, num_delivered - 1)))
    return random.uniform(ceiling / 2, ceiling)


@dataclass
class Subscription:
    """A service's durable pull consumer and the loop that feeds its handler."""

    bus: Bus
    service: str
    handler: Callable[[Any, Delivery], Awaitable[None]]
    stream: str
    subjects: tuple[str, ...]
    decode: Callable[[bytes], Any]
    max_deliver: int
    concurrency: int
    ack_wait_seconds: float
    batch_handler: BatchHandler | None = None
    max_batch: int = 256
    max_deferrals: int = 0
    """Deliveries the server allows beyond ``max_deliver``, spent only by :class:`Deferred`."""
    max_waiting: int | None = None
    """The server's ``max_ack_pending``: a message nak'd with a delay (a :class:`Deferred`) still
    counts until it is acked, so a consumer whose messages mostly wait (the executor's wait for
    CI) needs room for every wait, not a few batches of handlers. Default: eight per handler."""
    _stopping: asyncio.Event = field(default_factory=asyncio.Event)
    _inflight: set[asyncio.Task[None]] = field(default_factory=set)
    _loop_task: asyncio.Task[None] | None = None
    _puller: Puller | None = None

    @property
    def durable(self) -> str:
        return self.service

    def _consumer_config(self) -> js_api.ConsumerConfig:
        subjects = list(self.subjects)
        return js_api.ConsumerConfig(
            durable_name=self.durable,
            ack_policy=js_api.AckPolicy.EXPLICIT,
            deliver_policy=js_api.DeliverPolicy.ALL,
            max_deliver=self.max_deliver + self.max_deferrals,
            ack_wait=self.ack_wait_seconds,
            max_ack_pending=self.max_waiting or max(64, self.concurrency * 8),
            filter_subjects=subjects if len(subjects) > 1 else None,
            filter_subject=subjects[0] if len(subjects) == 1 else None,
        )

    async def start(self) -> None:
        js = self.bus.js
        stream = self.stream
        config = self._consumer_config()
        try:
            await js.add_consumer(stream, config)
        except BadRequestError:
            with contextlib.suppress(NotFoundError):
                await js.delete_consumer(stream, self.durable)
            await js.add_consumer(stream, config)
        if self.batch_handler is not None:
            psub = await js.pull_subscribe_bind(durable=self.durable, stream=stream)
            loop = self._run_batches(psub)
        else:
            self._puller = Puller(self.bus.nc, stream, self.durable)
            await self._puller.open()
            loop = self._run(self._puller)
        self._loop_task = asyncio.create_task(loop, name=f"consume:{self.service}")

    @property
    def running(self) -> bool:
        return self._loop_task is not None and not self._loop_task.done()

    async def stop(self) -> None:
        """Drain: stop fetching, let in-flight handlers finish and settle their messages."""
        self._stopping.set()
        if self._puller is not None:
            self._puller.wake()
        if self._loop_task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
        if self._inflight:
            await asyncio.gather(*self._inflight, return_exceptions=True)

    async def _run(self, puller: Puller) -> None:
        """Each message to a handler task as it arrives, at most ``concurrency`` at once."""
        slots = asyncio.Semaphore(self.concurrency)
        try:
            while not self._stopping.is_set():
                try:
                    msg = await puller.next(lambda: self.concurrency - len(self._inflight))
                except Exception as exc:  # connection hiccup: the server keeps the messages
                    log.warning("pull_failed", service=self.service, error=str(exc))
                    await asyncio.sleep(0.5)
                    continue
                if msg is None:  # woken: a slot came free, or stopping
                    continue
                await slots.acquire()
                task = asyncio.create_task(self._handle(msg))
                self._inflight.add(task)
                task.add_done_callback(self._done_callback(slots))
        finally:
            with contextlib.suppress(Exception):
                await puller.close()

    async def _run_batches(self, psub: JetStreamContext.PullSubscription) -> None:
        """A batch handler's loop: whatever is waiting, up to ``max_batch``, in one call."""
        slots = asyncio.Semaphore(self.concurrency)
        while not self._stopping.is_set():
            try:
                msgs = await psub.fetch(batch=self.max_batch, timeout=0.5)
            except (TimeoutError, nats.errors.TimeoutError):
                continue
            except Exception as exc:  # connection hiccup: the server keeps the messages
                log.warning("fetch_failed", service=self.service, error=str(exc))
                await asyncio.sleep(0.5)
                continue
            if self.batch_handler is not None and len(msgs) > 1:
                await self._handle_batch(msgs)
                continue
            for msg in msgs:
                await slots.acquire()
                task = asyncio.create_task(self._handle(msg))
                self._inflight.add(task)
                task.add_done_callback(self._done_callback(slots))
        with contextlib.suppress(Exception):
            await psub.unsubscribe()

    async def _handle_batch(self, msgs: list[Msg]) -> None:
        """All of a backlog in one call; on any error, each message on its own (with retries)."""
        assert self.batch_handler is not None
        items: list[tuple[Any, Delivery]] = []
        try:
            for msg in msgs:
                meta = msg.metadata
                delivery = Delivery(meta.sequence.stream, meta.num_delivered, msg)
                items.append((self._decode(msg.data), delivery))
            started = perf_counter()
            await self.batch_handler(items)
            HANDLER_SECONDS.labels(self.service, "batch").observe(perf_counter() - started)
        except Exception as exc:
            log.warning("batch_failed_one_by_one", service=self.service, size=len(msgs), error=repr(exc))
            for msg in msgs:
                await self._handle(msg)
            return
        for item, delivery in items:
            await self._settle(delivery.msg, delivery, str(getattr(item, "event_type", "unknown")), None)

    def _done_callback(self, slots: asyncio.Semaphore) -> Callable[[asyncio.Task[None]], None]:
        def done(task: asyncio.Task[None]) -> None:
            self._inflight.discard(task)
            slots.release()
            if self._puller is not None:
                self._puller.wake()  # a request may now be sent for the freed slot

        return done

    def _decode(self, data: bytes) -> Any:
        """Decode, turning any failure into a permanent one: the same bytes never decode later."""
        try:
            return self.decode(data)
        except (EventDecodeError, PermanentError):
            raise
        except Exception as exc:
            raise DecodeError(f"{type(exc).__name__}: {exc}") from exc

    async def _handle(self, msg: Msg) -> None:
        meta = msg.metadata
        delivery = Delivery(stream_seq=meta.sequence.stream, num_delivered=meta.num_delivered, msg=msg)
        event_type = (msg.headers or {}).get("Medic-Event-Type", "unknown")
        started = perf_counter()
        error: BaseException | None = None
        try:
            item = self._decode(msg.data)
            event_type = str(getattr(item, "event_type", event_type))
            failure_id = str(getattr(item, "failure_id", ""))
            with (
                tracer().start_as_current_span(
                    f"{self.service} handle {event_type}",
                    context=extract_context(msg.headers),
                    attributes={"medic.failure_id": failure_id, "medic.service": self.service},
                    record_exception=False,  # a deferral is a wait, not an error: see _traced
                    set_status_on_exception=False,
                ) as span,
                structlog.contextvars.bound_contextvars(**({"failure_id": failure_id} if failure_id else {})),
            ):
                await _traced(span, self.handler(item, delivery))
        except Exception as exc:
            error = exc
        finally:
            HANDLER_SECONDS.labels(self.service, event_type).observe(perf_counter() - started)
        await self._settle(msg, delivery, event_type, error)

    async def _settle(
        self, msg: Msg, delivery: Delivery, event_type: str, error: BaseException | None
    ) -> None:
        try:
            if error is None:
                if self._stopping.is_set():
                    await msg.ack_sync()  # a drain ends only when the server has every ack
                else:
                    await msg.ack()
                EVENTS_HANDLED.labels(self.service, event_type, "ok").inc()
                return
            deferrable = delivery.num_delivered < self.max_deliver + self.max_deferrals
            if isinstance(error, Deferred) and deferrable:
                await msg.nak(delay=error.delay_seconds)
                EVENTS_HANDLED.labels(self.service, event_type, "deferred").inc()
                return
            permanent = isinstance(error, EventDecodeError | PermanentError)
            if permanent or delivery.num_delivered >= self.max_deliver:
                await self._dead_letter(msg, delivery, error)
                await msg.term()
                EVENTS_HANDLED.labels(self.service, event_type, "dead_letter").inc()
                return
            log.warning(
                "handler_failed_will_retry",
                service=self.service,
                event_type=event_type,
                attempt=delivery.num_delivered,
                error=repr(error),
            )
            await msg.nak(delay=backoff_seconds(delivery.num_delivered))
            EVENTS_HANDLED.labels(self.service, event_type, "retry").inc()
        except Exception as exc:  # the server redelivers after ack_wait; nothing is lost
            log.error("settle_failed", service=self.service, error=str(exc))

    async def _dead_letter(self, msg: Msg, delivery: Delivery, error: BaseException) -> None:
        headers: dict[str, Any] = {
            "Nats-Msg-Id": f"{self.service}:{delivery.stream_seq}",
            "Medic-Service": self.service,
            "Medic-Error": f"{type(error).__name__}: {error}"[:1000],
            "Medic-Original-Subject": msg.subject,
            "Medic-Stream-Seq": str(delivery.stream_seq),
            "Medic-Num-Delivered": str(delivery.num_delivered),
        }
        await self.bus.js.publish(
            self.bus.topology.dlq_subject(self.service),
            msg.data,
            headers=headers,
            stream=self.bus.topology.dlq_stream,
        )
        DEAD_LETTERS.labels(self.service).inc()
        log.error(
            "dead_lettered",
            service=self.service,
            stream_seq=delivery.stream_seq,
            attempts=delivery.num_delivered,
            error=repr(error),
        )
