"""A durable pull consumer's messages handed over one by one, as the server delivers them.

nats-py's ``fetch(batch=n)`` returns only when the batch is full, the server says no more are
waiting, or the request expires: a message that arrives first can sit in the client while the
fetch waits for the others (up to the fetch's timeout). Here a pull request for as many
messages as there are free handler slots stays open on the server, and each message is handed
to the caller the moment it arrives; when the request is used up or over (delivered in full,
expired, or ended by the server), the next is sent for the slots free then. There is no poll
interval on the path of a message: waiting for the next one is waiting on the socket.

At most one request is open at a time, so the server never holds more messages for this
consumer than the slots that were free when it was asked. A request the server never ends
(a lost reply, a reconnect) is given up ``GRACE_SECONDS`` after its own expiry.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription as NatsSubscription
from nats.js import api as js_api

REQUEST_SECONDS = 5.0
"""How long one pull request stays open on the server with nothing to deliver. Not on the
path of a message (a message is delivered the moment it is stored); only how often an idle
consumer renews its request."""
GRACE_SECONDS = 1.0
"""Past its expiry, a request whose end the server never told is taken as over."""

RETRY_SECONDS = 0.5
"""After the server refused a request (409: consumer deleted, too many waiting; 503), the next
waits this long, so a consumer that is gone is not asked again in a tight loop."""

HEARTBEAT = js_api.StatusCode.CONTROL_MESSAGE.value
ENDED = frozenset({js_api.StatusCode.NO_MESSAGES.value, js_api.StatusCode.REQUEST_TIMEOUT.value})
"""The request is over as the server meant it to be (nothing left to wait for, or it expired)."""


class Puller:
    """Messages of ``durable`` on ``stream``, one at a time, with ``free()`` slots to fill."""

    def __init__(
        self,
        nc: NATS,
        stream: str,
        durable: str,
        *,
        request_seconds: float = REQUEST_SECONDS,
        api_prefix: str = js_api.DEFAULT_PREFIX,
    ) -> None:
        self.nc = nc
        self.next_subject = f"{api_prefix}.CONSUMER.MSG.NEXT.{stream}.{durable}"
        self.request_seconds = request_seconds
        self.inbox = nc.new_inbox()
        self._arrived: asyncio.Queue[Msg | None] = asyncio.Queue()
        self._sub: NatsSubscription | None = None
        self._requested = 0
        """Messages the open request may still deliver (0: no request open)."""
        self._deadline = 0.0
        self._not_before = 0.0

    async def open(self) -> None:
        self._sub = await self.nc.subscribe(self.inbox, cb=self._on_message)

    async def close(self) -> None:
        """Stop listening, and give back what arrived but was not taken (redelivered at once).

        A message the server sends after this is redelivered after the consumer's ack_wait."""
        if self._sub is not None:
            await self._sub.unsubscribe()
            self._sub = None
        while not self._arrived.empty():
            msg = self._arrived.get_nowait()
            if msg is not None and not (msg.headers and js_api.Header.STATUS in msg.headers):
                await msg.nak()

    async def _on_message(self, msg: Msg) -> None:
        self._arrived.put_nowait(msg)

    def wake(self) -> None:
        """Make a waiting :meth:`next` return None (a slot came free, or the consumer stops)."""
        self._arrived.put_nowait(None)

    @property
    def requested(self) -> int:
        return self._requested

    async def next(self, free: Callable[[], int]) -> Msg | None:
        """The next message, or None when :meth:`wake` was called (look at the slots again)."""
        while True:
            now = time.monotonic()
            if self._requested > 0 and now > self._deadline:
                self._requested = 0  # the server never said it ended: take it as over
            if self._requested == 0 and now < self._not_before:
                timeout: float | None = self._not_before - now
            elif self._requested == 0 and (wanted := free()) > 0:
                await self._request(wanted)
                timeout = self._deadline - time.monotonic()
            else:
                timeout = self._deadline - now if self._requested > 0 else None
            try:
                msg = await asyncio.wait_for(self._arrived.get(), timeout)
            except TimeoutError:
                continue
            if msg is None:
                return None
            status = msg.headers.get(js_api.Header.STATUS) if msg.headers else None
            if status is None:
                self._requested = max(0, self._requested - 1)
                return msg
            if status == HEARTBEAT:
                continue
            self._requested = 0  # this request is over
            if status not in ENDED:
                self._not_before = time.monotonic() + RETRY_SECONDS

    async def _request(self, batch: int) -> None:
        expires_ns = int(self.request_seconds * 1_000_000_000)
        body = json.dumps({"batch": batch, "expires": expires_ns}).encode()
        await self.nc.publish(self.next_subject, body, reply=self.inbox)
        self._requested = batch
        self._deadline = time.monotonic() + self.request_seconds + GRACE_SECONDS
