"""A branch's newest completed runs, read once for every failure it is fresh enough for.

A push that breaks a workflow fails many runs of one branch together, and each failure's
history (same-commit runs, the parent, the last green run) is read from the same page. A page
requested at or after the moment a failure was received (its webhook or poll, recorded on the
intake stream) holds every run that completed before then: for that failure it is no staler
than a page fetched now, so it is reused, in flight or landed. A failure received after the
newest page was requested gets a fresh one, which then serves everyone received before it.

Pages are kept per repository and branch with the time they were requested, at most
``MAX_PAGE_AGE`` old and ``MAX_BRANCHES`` of them (the oldest go first); a failed request is
never kept. The clock is the wall clock: ``received_at`` is stamped by the replica that
recorded the failure, possibly another process.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from medic.events import utc_now
from medic.github.models import WorkflowRun
from medic.singleflight import COALESCED

MAX_PAGE_AGE = timedelta(seconds=60)
"""A page older than this is not reused: failures are rarely inspected a minute after receipt,
and a bound keeps a quiet branch's page from being held forever."""
MAX_BRANCHES = 512
"""Branches whose newest page is kept; past this the least recently requested is dropped."""

Runs = tuple[WorkflowRun, ...]
Fetch = Callable[[], Awaitable[Runs]]


@dataclass(frozen=True)
class Page:
    requested_at: datetime
    """When its request was sent: it holds every run that completed before this moment."""
    runs: asyncio.Future[Runs]


class FreshPages:
    """The newest page per key; ``name`` labels the coalesced-calls counter."""

    def __init__(
        self,
        name: str,
        *,
        max_age: timedelta = MAX_PAGE_AGE,
        max_keys: int = MAX_BRANCHES,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.name = name
        self.max_age, self.max_keys, self.clock = max_age, max_keys, clock
        self._pages: OrderedDict[tuple[str, ...], Page] = OrderedDict()

    def __len__(self) -> int:
        return len(self._pages)

    async def get(self, key: tuple[str, ...], received_at: datetime | None, fetch: Fetch) -> Runs:
        """A page requested at or after ``received_at``: the one kept if it is, else a new request."""
        now = self.clock()
        page = self._pages.get(key)
        if page is not None and (now - page.requested_at > self.max_age or _failed(page.runs)):
            del self._pages[key]
            page = None
        if page is not None and _fresh_enough(page, received_at):
            COALESCED.labels(self.name).inc()
        else:
            page = Page(requested_at=now, runs=asyncio.ensure_future(fetch()))
            self._pages[key] = page
            self._pages.move_to_end(key)
            page.runs.add_done_callback(lambda done: self._landed(key, done))
            while len(self._pages) > self.max_keys:
                self._pages.popitem(last=False)
        # shielded: one asker cancelled (redelivered, stopping) does not cancel the others' page
        return await asyncio.shield(page.runs)

    def _landed(self, key: tuple[str, ...], done: asyncio.Future[Runs]) -> None:
        if done.cancelled() or done.exception() is not None:  # retrieved: no "never retrieved" warning
            page = self._pages.get(key)
            if page is not None and page.runs is done:
                del self._pages[key]


def _fresh_enough(page: Page, received_at: datetime | None) -> bool:
    """Requested since the failure was received; a record from before the stamp existed only
    shares a request in flight (at most one round trip older than asking anew)."""
    if received_at is None:
        return not page.runs.done()
    return page.requested_at >= received_at


def _failed(runs: asyncio.Future[Runs]) -> bool:
    return runs.done() and (runs.cancelled() or runs.exception() is not None)
