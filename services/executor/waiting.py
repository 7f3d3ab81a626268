"""The executor's wait for CI: sent orders on a work stream of their own, one look per delivery.

Once a remediation's action is sent, its order (the GateDecided or ApprovalGranted it carries
out, as stored in the event log) is published here, ``Nats-Msg-Id`` ``verify:<failure id>`` so a
repeat after a crash is a no-op. Each delivery is one look at CI; "not yet" is a
:class:`~medic.bus.Deferred` redelivery after :func:`.verification.pause_before_look`. A
remediation waiting for CI (minutes on GitHub) therefore holds no handler or task between
looks: the order's own delivery is acked as soon as the action is sent, waits survive
restarts, and replicas share them. The wait's clock is the message's stored time, which
redeliveries keep.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from medic.bus import Bus, Deferred, Delivery, Subscription
from medic.consumer import RATE_LIMIT_DEFERRALS, PermanentError
from medic.events import decode_event, utc_now
from medic.github.errors import RateLimitExhausted
from medic.services.executor.orders import Order, order_from
from medic.services.executor.verification import looks_within, pause_before_look
from medic.telemetry import inject_headers, logger

log = logger(__name__)


class Look(Protocol):
    """:meth:`.remediation.Remediation.look`: one look at CI, True when the remediation finished."""

    def __call__(
        self, order: Order, *, waited_seconds: float, within_seconds: float, last_look: bool
    ) -> Awaitable[bool]: ...


def decode_order(data: bytes) -> Order:
    order = order_from(decode_event(data))
    if order is None:
        raise PermanentError("the event orders nothing: it has no place in the wait for CI")
    return order


MAX_WAITS = 100_000
"""Remediations that may wait for CI at once. Every wait is a message out on the consumer (a
deferred one counts toward the server's ``max_ack_pending`` until it is acked), so this is the
consumer's limit: at the default of eight per handler, the 129th re-run of a burst would start
its clock unseen behind 128 waits of ten minutes each."""


RELOADED_WAIT_ROOM = 86_400.0
"""Seconds of looks the consumer allows a wait even when ``verify_timeout_seconds`` is shorter."""


class CiWait:
    def __init__(
        self, bus: Bus, *, look: Look, within_seconds: Callable[[], float], max_deliver: int
    ) -> None:
        self.bus = bus
        self.look = look
        self.within_seconds = within_seconds
        """Read at every look, so a reloaded ``verify_timeout_seconds`` applies to waits under way."""
        self.stream = f"{bus.topology.stream}_VERIFY"
        self.subject = f"{bus.topology.prefix}.verify.ci"
        self.max_deliver = max_deliver
        # room for a wait of a day whatever the timeout at start: a reload may lengthen it, and the
        # wait's own clock (not the delivery count) is what ends it
        self.max_deferrals = looks_within(max(within_seconds(), RELOADED_WAIT_ROOM)) + RATE_LIMIT_DEFERRALS
        self._subscription: Subscription | None = None

    @property
    def deliveries(self) -> int:
        """Deliveries the server allows a wait; the last one ends it whatever CI says."""
        return self.max_deliver + self.max_deferrals

    async def start(self) -> None:
        await self.bus.ensure_work_stream(self.stream, [self.subject])
        self._subscription = self.bus.subscribe_work(
            "executor-ci-wait",
            self._look,
            stream=self.stream,
            subjects=[self.subject],
            decode=decode_order,
            max_deliver=self.max_deliver,
            max_deferrals=self.max_deferrals,
            concurrency=16,
            max_waiting=MAX_WAITS,
        )
        await self._subscription.start()

    async def stop(self) -> None:
        if self._subscription is not None:
            await self._subscription.stop()

    @property
    def running(self) -> bool:
        return self._subscription is not None and self._subscription.running

    async def enqueue(self, order: Order) -> None:
        """Start waiting for CI on a sent order (once: a repeat within the dedup window is dropped,
        a later one finds the remediation finished)."""
        await self.bus.js.publish(
            self.subject,
            order.cause.model_dump_json().encode(),
            headers=inject_headers({"Nats-Msg-Id": f"verify:{order.failure_id}"}),
            stream=self.stream,
        )

    async def _look(self, order: Order, delivery: Delivery) -> None:
        waited = (utc_now() - delivery.msg.metadata.timestamp).total_seconds()
        pause = pause_before_look(delivery.num_delivered)
        try:
            finished = await self.look(
                order,
                waited_seconds=waited,
                within_seconds=self.within_seconds(),
                last_look=delivery.num_delivered >= self.deliveries,
            )
        except RateLimitExhausted as exc:
            raise Deferred(f"GitHub rate limit: {exc}", delay_seconds=exc.seconds_until_reset()) from exc
        except Exception as exc:  # every look spends a delivery: errors wait like "not yet" does
            log.warning("ci_look_failed", failure_id=order.failure_id, error=str(exc))
            raise Deferred(f"look failed: {exc}", delay_seconds=pause) from exc
        if not finished:
            raise Deferred("CI has not concluded", delay_seconds=pause)
