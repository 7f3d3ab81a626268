"""Tells one failure's story in its Slack thread, one event at a time, exactly once each.

For each event: make sure the thread's parent exists (one per failure, whoever posts it),
post the stage's reply under it, edit the parent to the failure's new state, keep the
approval card and the pointers in the approvals / critical channels current. Every step
is recorded in the thread record right after its Slack call, so a retry resumes where the
last attempt stopped. Slack's 429s are waited out here (the channel is held for its
``Retry-After``); anything else transient is raised for the durable consumer to retry.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from functools import partial
from typing import Any, TypeVar

from medic.config import Settings
from medic.consumer import Delivery
from medic.events import (
    ApprovalExpired,
    ApprovalGranted,
    ApprovalPartiallyGranted,
    ApprovalRejected,
    ApprovalRequested,
    Event,
    FailureDetected,
    utc_now,
)
from medic.services.notifier import blocks
from medic.services.notifier.facts import Facts
from medic.services.notifier.threads import ApprovalCard, ThreadRecord, ThreadStore
from medic.slack.client import SlackClient
from medic.slack.errors import SlackRateLimited
from medic.telemetry import logger

log = logger(__name__)
_T = TypeVar("_T")
WAIT_FOR_ORDER_DELIVERIES = 4
"""Deliveries an event waits for the one before it; after that it is told anyway."""
POSTING_LEASE = timedelta(seconds=360)
"""How long another replica's unfinished parent post is trusted before this one takes over:
longer than the longest 429 wait, so only a crashed poster is ever overtaken."""
HEARTBEAT_SECONDS = 10.0


class NotYet(Exception):
    """Told too early (its parent or its cause is not in the thread yet): retried shortly."""


def digest(payload: Any) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


class ThreadTeller:
    def __init__(
        self,
        *,
        settings: Settings,
        slack: SlackClient,
        store: ThreadStore,
        max_rate_limit_wait: float = 300.0,
        order_wait: float = 5.0,
    ) -> None:
        self.order_wait = order_wait
        self.settings = settings
        self.slack = slack
        self.store = store
        self.max_rate_limit_wait = max_rate_limit_wait
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    # --- Slack calls: 429 waited out, the delivery kept alive meanwhile ---------------------

    async def _call(self, delivery: Delivery | None, call: Callable[[], Awaitable[_T]]) -> _T:
        waited = 0.0
        while True:
            try:
                return await self._alive(delivery, call())
            except SlackRateLimited as exc:
                if waited + exc.retry_after > self.max_rate_limit_wait:
                    raise
                waited += exc.retry_after
                log.info("slack_rate_limited", method=exc.method, retry_after=exc.retry_after)
                await self._alive(delivery, asyncio.sleep(exc.retry_after))

    async def _alive(self, delivery: Delivery | None, work: Awaitable[_T]) -> _T:
        """Await ``work`` while telling the server every few seconds that we are still on it."""
        if delivery is None:
            return await work
        task = asyncio.ensure_future(work)
        while True:
            done, _ = await asyncio.wait({task}, timeout=HEARTBEAT_SECONDS)
            if done:
                return task.result()
            with contextlib.suppress(Exception):
                await delivery.in_progress()

    # --- the story ------------------------------------------------------------------------

    async def tell(self, event: Event, delivery: Delivery | None = None) -> None:
        """Tell ``event``; events of one failure are told one at a time in this process, in
        the order they were fetched (asyncio locks are fair), which is the stream's order."""
        lock, users = self._locks.get(event.failure_id, (asyncio.Lock(), 0))
        self._locks[event.failure_id] = (lock, users + 1)
        try:
            async with lock:
                await self._tell(event, delivery)
        finally:
            lock, users = self._locks[event.failure_id]
            if users <= 1:
                del self._locks[event.failure_id]
            else:
                self._locks[event.failure_id] = (lock, users - 1)

    async def _tell(self, event: Event, delivery: Delivery | None) -> None:
        attempt = delivery.num_delivered if delivery is not None else WAIT_FOR_ORDER_DELIVERIES
        record = await self._thread(event, attempt, delivery)
        if event.event_id not in record.told:
            record = await self._reply(event, record, attempt, delivery)
        record = await self._refresh_parent(record, delivery)
        record = await self._refresh_card(event, record, delivery)
        await self._critical(record, delivery)

    def _channel_for(self, facts: Facts) -> str:
        if facts.repository:
            return self.settings.policy_for(facts.repository).slack_channel
        return self.settings.slack_channels.get("default", "#ci-medic")

    async def _thread(self, event: Event, attempt: int, delivery: Delivery | None) -> ThreadRecord:
        """The failure's record with a posted parent; posts the parent if nobody has.

        Waiting happens here, heartbeating, not by failing the delivery: a delivery failed
        for "not yet" would count towards ``max_deliver`` and could end in the dead letters.
        """
        found = await self.store.get(event.failure_id)
        if found is None and not isinstance(event, FailureDetected) and attempt < WAIT_FOR_ORDER_DELIVERIES:
            found = await self._wait_for(event.failure_id, lambda r: True, delivery, self.order_wait)
        if found is None:
            facts = Facts(failure_id=event.failure_id).merge(event)
            fresh = ThreadRecord(
                failure_id=event.failure_id,
                channel=self._channel_for(facts),
                posting_since=utc_now(),
                facts=facts,
            )
            if await self.store.create(fresh) is not None:
                return await self._post_parent(fresh, delivery)
            found = await self.store.get(event.failure_id)
            assert found is not None
        record, _ = found
        if record.ts is not None:
            return record
        waited = await self._wait_for(
            record.failure_id,
            lambda r: r.ts is not None or r.posting_since is None,
            delivery,
            POSTING_LEASE.total_seconds(),
        )
        if waited is not None and waited[0].ts is not None:
            return waited[0]
        return await self._take_over(record.failure_id, delivery)

    async def _take_over(self, failure_id: str, delivery: Delivery | None) -> ThreadRecord:
        """The replica that was posting the parent has not finished within its lease: post it."""
        now = utc_now()

        def claim(r: ThreadRecord) -> ThreadRecord:
            stale = r.posting_since is None or now - r.posting_since >= POSTING_LEASE
            return r.model_copy(update={"posting_since": now}) if r.ts is None and stale else r

        taken = await self.store.mutate(failure_id, claim)
        if taken.ts is not None:
            return taken
        if taken.posting_since != now:
            raise NotYet("another notifier took over the parent")
        log.warning("parent_post_taken_over", failure_id=failure_id)
        return await self._post_parent(taken, delivery)

    async def _wait_for(
        self,
        failure_id: str,
        ready: Callable[[ThreadRecord], bool],
        delivery: Delivery | None,
        within: float,
    ) -> tuple[ThreadRecord, int] | None:
        """Poll the record until ``ready`` (or ``within`` seconds pass), keeping the delivery alive."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        beat = loop.time() + HEARTBEAT_SECONDS
        while True:
            found = await self.store.get(failure_id)
            if found is not None and ready(found[0]):
                return found
            if loop.time() >= deadline:
                return None
            if delivery is not None and loop.time() >= beat:
                beat = loop.time() + HEARTBEAT_SECONDS
                with contextlib.suppress(Exception):
                    await delivery.in_progress()
            await asyncio.sleep(0.05)

    async def _post_parent(self, record: ThreadRecord, delivery: Delivery | None) -> ThreadRecord:
        text, content = blocks.parent(record.facts, dashboard_url=self.settings.dashboard_url())
        try:
            posted = await self._call(
                delivery, lambda: self.slack.post_message(record.channel, text=text, blocks=content)
            )
        except Exception:
            # Slack refused or failed: give the claim back so the retry (any replica) posts at once
            await self.store.mutate(record.failure_id, partial(_release_claim, record.posting_since))
            raise
        shown = digest(content)
        return await self.store.mutate(
            record.failure_id,
            lambda r: r.model_copy(
                update={
                    "channel": posted.channel,
                    "ts": posted.ts,
                    "posting_since": None,
                    "parent_shown": shown,
                }
            ),
        )

    async def _reply(
        self, event: Event, record: ThreadRecord, attempt: int, delivery: Delivery | None
    ) -> ThreadRecord:
        cause = event.causation_id
        if (
            cause is not None
            and not isinstance(event, FailureDetected)
            and cause not in record.told
            and attempt < WAIT_FOR_ORDER_DELIVERIES
            and _is_told_in_thread(event)
        ):
            waited = await self._wait_for(
                record.failure_id, lambda r: cause in r.told, delivery, self.order_wait
            )
            record = waited[0] if waited is not None else record
            if event.event_id in record.told:
                return record
        if event.event_id in record.telling and await self._already_in_thread(event, record, delivery):
            return await self._mark_told(event, record, card_ts=None)
        record = await self.store.mutate(
            record.failure_id,
            lambda r: r.model_copy(
                update={"telling": _add(r.telling, event.event_id), "facts": r.facts.merge(event)}
            ),
        )
        assert record.ts is not None
        thread_ts = record.ts
        card_ts: str | None = None
        if isinstance(event, ApprovalRequested):
            text, content = blocks.approval_card(event, record.facts, needed=event.payload.approvals_needed)
            posted = await self._call(
                delivery,
                lambda: self.slack.post_message(
                    record.channel, text=text, blocks=content, thread_ts=thread_ts
                ),
            )
            card_ts = posted.ts
        else:
            told = blocks.reply(event, record.facts)
            if told is not None:
                text, content = told
                await self._call(
                    delivery,
                    lambda: self.slack.post_message(
                        record.channel, text=text, blocks=content, thread_ts=thread_ts
                    ),
                )
        return await self._mark_told(event, record, card_ts=card_ts)

    async def _mark_told(self, event: Event, record: ThreadRecord, *, card_ts: str | None) -> ThreadRecord:
        card = None
        if isinstance(event, ApprovalRequested) and card_ts is not None:
            card = ApprovalCard(
                approval_id=event.payload.approval_id,
                ts=card_ts,
                request=event.model_dump(mode="json"),
                needed=event.payload.approvals_needed,
            )

        def told(r: ThreadRecord) -> ThreadRecord:
            update: dict[str, Any] = {
                "told": _add(r.told, event.event_id),
                "telling": tuple(e for e in r.telling if e != event.event_id),
                "facts": r.facts.merge(event),
            }
            if card is not None and r.approval is None:
                update["approval"] = card.model_copy(update={"shown": ""})
            return r.model_copy(update=update)

        return await self.store.mutate(record.failure_id, told)

    async def _already_in_thread(self, event: Event, record: ThreadRecord, delivery: Delivery | None) -> bool:
        """A crash between posting and recording: look for the reply's marker in the thread."""
        assert record.ts is not None
        thread_ts = record.ts
        messages = await self._call(delivery, lambda: self.slack.thread_replies(record.channel, thread_ts))
        marker = blocks.reply_marker(event.event_id)
        return any(b.get("block_id") == marker for m in messages for b in m.get("blocks", []) or [])

    async def _refresh_parent(self, record: ThreadRecord, delivery: Delivery | None) -> ThreadRecord:
        """Edit the parent until it shows the latest facts (another replica may add some meanwhile)."""
        for _ in range(3):
            text, content = blocks.parent(record.facts, dashboard_url=self.settings.dashboard_url())
            shown = digest(content)
            if shown == record.parent_shown or record.ts is None:
                return record
            await self._call(
                delivery,
                partial(self.slack.update_message, record.channel, record.ts, text=text, blocks=content),
            )
            record = await self.store.mutate(
                record.failure_id, partial(_shown_if_unchanged, record.facts, shown)
            )
        return record

    async def _refresh_card(
        self, event: Event, record: ThreadRecord, delivery: Delivery | None
    ) -> ThreadRecord:
        card = record.approval
        if card is None:
            return record
        if isinstance(event, ApprovalPartiallyGranted) and _answers(event, card.approval_id):
            approvals = event.payload.approvals
            record = await self.store.mutate(record.failure_id, partial(_with_approvals, approvals))
            card = record.approval
            assert card is not None
        outcome = blocks.outcome_line(event)
        if outcome is not None and card.outcome is None and _answers(event, card.approval_id):
            record = await self.store.mutate(
                record.failure_id,
                lambda r: (
                    r.model_copy(update={"approval": r.approval.model_copy(update={"outcome": outcome})})
                    if r.approval is not None and r.approval.outcome is None
                    else r
                ),
            )
            card = record.approval
            assert card is not None
        request = ApprovalRequested.model_validate(card.request)
        text, content = blocks.approval_card(
            request, record.facts, needed=card.needed, approved_by=card.approved_by, outcome=card.outcome
        )
        shown = digest(content)
        if card.pointer_ts is None:
            record = await self._approvals_pointer(record, delivery)
        if shown == card.shown:
            return record
        await self._call(
            delivery, lambda: self.slack.update_message(record.channel, card.ts, text=text, blocks=content)
        )
        return await self.store.mutate(
            record.failure_id,
            lambda r: (
                r.model_copy(update={"approval": r.approval.model_copy(update={"shown": shown})})
                if r.approval is not None
                else r
            ),
        )

    async def _permalink(self, record: ThreadRecord, delivery: Delivery | None) -> str:
        if record.permalink is not None or record.ts is None:
            return record.permalink or ""
        ts = record.ts
        link = await self._call(delivery, lambda: self.slack.permalink(record.channel, ts))
        await self.store.mutate(
            record.failure_id, lambda r: r.model_copy(update={"permalink": r.permalink or link})
        )
        return link

    async def _approvals_pointer(self, record: ThreadRecord, delivery: Delivery | None) -> ThreadRecord:
        channel = self.settings.slack_channels.get("approvals")
        if not channel:
            return record
        link = await self._permalink(record, delivery)
        text, content = blocks.pointer(record.facts, link, ":raised_hand: Approval needed")
        posted = await self._call(
            delivery, lambda: self.slack.post_message(channel, text=text, blocks=content)
        )
        return await self.store.mutate(
            record.failure_id,
            lambda r: (
                r.model_copy(update={"approval": r.approval.model_copy(update={"pointer_ts": posted.ts})})
                if r.approval is not None and r.approval.pointer_ts is None
                else r
            ),
        )

    async def _critical(self, record: ThreadRecord, delivery: Delivery | None) -> None:
        risk = record.facts.risk
        channel = self.settings.slack_channels.get("critical")
        if (
            record.critical_ts is not None
            or risk is None
            or risk < self.settings.critical_risk
            or not channel
        ):
            return
        link = await self._permalink(record, delivery)
        text, content = blocks.pointer(
            record.facts, link, f":rotating_light: Critical failure (risk {risk}/10)"
        )
        posted = await self._call(
            delivery, lambda: self.slack.post_message(channel, text=text, blocks=content)
        )
        await self.store.mutate(
            record.failure_id, lambda r: r.model_copy(update={"critical_ts": r.critical_ts or posted.ts})
        )


def _release_claim(since: datetime | None, record: ThreadRecord) -> ThreadRecord:
    if record.ts is None and record.posting_since == since:
        return record.model_copy(update={"posting_since": None})
    return record


def _with_approvals(approvals: tuple[str, ...], record: ThreadRecord) -> ThreadRecord:
    card = record.approval
    if card is None or len(card.approved_by) >= len(approvals):
        return record
    return record.model_copy(update={"approval": card.model_copy(update={"approved_by": approvals})})


def _shown_if_unchanged(facts: Facts, shown: str, record: ThreadRecord) -> ThreadRecord:
    """Record what the parent shows, unless newer facts arrived meanwhile (then draw again)."""
    return record.model_copy(update={"parent_shown": shown}) if record.facts == facts else record


def _add(items: tuple[str, ...], item: str) -> tuple[str, ...]:
    return items if item in items else (*items, item)


def _is_told_in_thread(event: Event) -> bool:
    """Decisions answer a person, not an earlier event: only pipeline steps wait for their cause."""
    return not isinstance(event, ApprovalGranted | ApprovalRejected | ApprovalExpired)


def _answers(event: Event, approval_id: str) -> bool:
    payload = getattr(event, "payload", None)
    return getattr(payload, "approval_id", None) == approval_id
