"""Polling GitHub for failed runs: the safety net under webhooks that never arrived.

Every interval each configured repository (and every repository of each configured
organisation) is asked for its newest completed runs with ``If-None-Match``: an idle
repository answers 304, which costs no rate limit. Failures newer than the repository's
cursor are recorded through the same intake as webhooks, so a poll and a webhook of one
attempt give one FailureDetected. The cursor is saved only after its runs are recorded:
a crash between the two re-records (deduplicated), never skips.

A poll reads further pages while the last one read still reaches into the cursor's window (at
most :data:`MAX_PAGES`): a burst of more runs than a page between two polls, or while the monitor
was down, is found whole instead of its oldest runs being skipped by the advancing cursor.

Replicas share the work through a lease per repository (see :mod:`cursors`). When the
rate limit is spent the poller stops asking until GitHub's reset, keeping every cursor.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import Counter as Tally
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta

from prometheus_client import Counter, Gauge
from pydantic import ValidationError

from medic.conclusions import run_failed
from medic.events import utc_now
from medic.github.client import ACCOUNT_NAME, GitHubClient
from medic.github.errors import GitHubError, RateLimitExhausted
from medic.github.models import RunsPage, WorkflowRun
from medic.services.monitor.allowlist import RepositoryAllowlist
from medic.services.monitor.intake import RunToInspect, from_workflow_run
from medic.services.monitor.store import Cursor, PollState
from medic.telemetry import logger

log = logger(__name__)

POLLS = Counter("medic_monitor_polls_total", "Repository polls by outcome", ["outcome"])
PAUSED_UNTIL = Gauge("medic_monitor_poll_paused_until", "Epoch second until which polling waits (rate limit)")
ORG_REFRESH_INTERVALS = 12
"""Organisation membership is listed again every 12 intervals (hourly at the default 5 minutes)."""
LEASE_FRACTION = 0.9
"""A lease ends a little before the next interval, so the next tick (any replica's) can take it."""

Record = Callable[[RunToInspect], Awaitable[bool]]
LATE_WINDOW = timedelta(minutes=2)
"""How far before the cursor a run not seen yet is still reported (see ``Cursor.recent``)."""
Discover = Callable[[], Awaitable[list[str]]]
PAGE_SIZE = 100
MAX_PAGES = 10
"""A thousand runs of one repository between two polls; each further page costs one request."""


def advance(
    cursor: Cursor | None, page: RunsPage, *, repository: str, now: datetime, lookback: timedelta
) -> tuple[Cursor, list[WorkflowRun]]:
    """The failed runs the page shows beyond the cursor, and the cursor that follows.

    ``updated_at`` has one-second resolution, so runs stamped with the cursor's second are
    told apart by the attempts already seen at that second.
    """
    since = cursor.updated_at if cursor else now - lookback
    boundary = set(cursor.seen_at_boundary) if cursor else set()
    seen = boundary | set(cursor.recent if cursor else ())
    late_since = since - LATE_WINDOW if cursor else since
    failed = [run for run in page.runs if run.status == "completed" and run_failed(run.conclusion)]
    found = [
        run
        for run in failed
        if run.updated_at > since
        or (run.updated_at == since and _key(run) not in boundary)
        or (late_since <= run.updated_at < since and _key(run) not in seen)
    ]
    newest = max([since, *(run.updated_at for run in page.runs)])
    at_newest = {_key(run) for run in page.runs if run.updated_at == newest}
    if newest == since:
        at_newest |= boundary
    last_id = max([cursor.last_run_id if cursor else 0, *(run.id for run in page.runs)])
    recent = {_key(run) for run in failed if run.updated_at >= newest - LATE_WINDOW}
    following = Cursor(
        repository=repository,
        updated_at=newest,
        seen_at_boundary=tuple(sorted(at_newest)),
        last_run_id=last_id,
        etag=page.etag,
        recent=tuple(sorted(recent)),
    )
    return following, sorted(found, key=lambda run: run.updated_at)


def _reaches(page: RunsPage, reach: datetime) -> bool:
    """Whether the page's oldest run is still inside the window: the next page may be too."""
    return min(run.updated_at for run in page.runs) >= reach


def _key(run: WorkflowRun) -> str:
    return f"{run.id}#{run.run_attempt}"


def valid_account(name: str) -> bool:
    return bool(ACCOUNT_NAME.match(name))


def valid_repository(name: str) -> bool:
    owner, _, repo = name.partition("/")
    return bool(ACCOUNT_NAME.match(owner)) and bool(repo) and "/" not in repo and repo not in {".", ".."}


class Poller:
    """One replica's polling loop; ``stats`` counts what it did (tests and the bench read it)."""

    def __init__(
        self,
        *,
        github: GitHubClient,
        state: PollState,
        record: Record,
        repositories: Sequence[str],
        organisations: Sequence[str],
        allowlist: RepositoryAllowlist,
        interval_seconds: float,
        lookback: timedelta,
        holder: str,
        discover: Discover | None = None,
    ) -> None:
        self.github, self.state, self.record = github, state, record
        self.allowlist, self.interval, self.lookback = allowlist, interval_seconds, lookback
        self.holder = holder
        self.discover = discover
        """Repositories found at run time (those that sent a webhook): the catch-up poll."""
        self.repositories = _checked(repositories, valid_repository, "poll_repository_ignored")
        self.organisations = _checked(organisations, valid_account, "poll_org_ignored")
        self._org_repositories: dict[str, list[str]] = {}
        self._ticks = 0
        self.paused_until = 0.0
        self.stats: Tally[str] = Tally()
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def enabled(self) -> bool:
        return bool(self.repositories or self.organisations or self.discover)

    def start(self) -> None:
        if self.enabled and self._task is None:
            self._stop.clear()
            self._task = asyncio.create_task(self._run(), name=f"monitor-poller-{self.holder}")

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, timeout=10)
            except TimeoutError:
                self._task.cancel()
            self._task = None

    async def _run(self) -> None:
        while not self._stop.is_set():
            try:
                await self.tick()
            except Exception:  # one bad tick (the bus away, a bug) must not end polling for good
                log.exception("poll_tick_failed", holder=self.holder)
            pause = max(self.interval, self.paused_until - time.time())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=pause)

    async def tick(self) -> None:
        """Poll every repository this replica wins the lease of, in a random order."""
        repositories = await self._watched()
        random.shuffle(repositories)
        for repository in repositories:
            if self._stop.is_set() or time.time() < self.paused_until:
                return
            if not await self.state.acquire(repository, self.holder, self.interval * LEASE_FRACTION):
                self.stats["leased_elsewhere"] += 1
                continue
            await self.poll(repository)
        self._ticks += 1

    async def poll(self, repository: str) -> int:
        """Record the repository's new failures; returns how many were recorded."""
        cursor = await self.state.cursor(repository)
        try:
            page = await self._runs_since(repository, cursor)
        except RateLimitExhausted as exc:
            self._pause(exc)
            return 0
        except GitHubError as exc:
            POLLS.labels("error").inc()
            log.warning("poll_failed", repository=repository, status=exc.status, error=str(exc))
            return 0
        self.stats["polled"] += 1
        if page.not_modified:
            POLLS.labels("not_modified").inc()
            return 0
        following, failed = advance(
            cursor, page, repository=repository, now=utc_now(), lookback=self.lookback
        )
        recorded = 0
        for run in failed:
            try:
                found = from_workflow_run(run, source="poll", repository=repository)
            except ValidationError as exc:  # an id out of range is not a real run: skip it, keep polling
                log.warning("poll_run_refused", repository=repository, run_id=run.id, errors=str(exc)[:300])
                self.stats["refused"] += 1
                continue
            recorded += await self.record(found)
        await self.state.save(following)
        POLLS.labels("changed").inc()
        self.stats["recorded"] += recorded
        return recorded

    async def _runs_since(self, repository: str, cursor: Cursor | None) -> RunsPage:
        """The newest page (conditional on the cursor's ETag) and as many older pages as still
        reach into the cursor's window (runs come newest first); one error fails the whole poll,
        so the cursor never moves past runs it did not see."""
        first = await self.github.list_runs(
            repository, status="completed", etag=cursor.etag if cursor else None, per_page=PAGE_SIZE
        )
        if first.not_modified:
            return first
        reach = cursor.updated_at - LATE_WINDOW if cursor else utc_now() - self.lookback
        runs, last, number = list(first.runs), first, 1
        while len(last.runs) == PAGE_SIZE and number < MAX_PAGES and _reaches(last, reach):
            number += 1
            last = await self.github.list_runs(
                repository, status="completed", per_page=PAGE_SIZE, page=number
            )
            runs.extend(last.runs)
        if number > 1:
            self.stats["older_pages"] += number - 1
        return first.model_copy(update={"runs": tuple(runs)})

    def _pause(self, exc: RateLimitExhausted) -> None:
        reset = exc.reset_at.timestamp() if exc.reset_at else time.time() + 60
        self.paused_until = max(self.paused_until, reset)
        PAUSED_UNTIL.set(self.paused_until)
        POLLS.labels("rate_limited").inc()
        self.stats["rate_limited"] += 1
        log.warning("poll_paused_rate_limit", until=self.paused_until, route=exc.route)

    async def _watched(self) -> list[str]:
        names = {name.lower(): name for name in self.repositories}
        if self._ticks % ORG_REFRESH_INTERVALS == 0 or len(self._org_repositories) < len(self.organisations):
            await self._refresh_organisations()
        for members in self._org_repositories.values():
            names.update({name.lower(): name for name in members})
        if self.discover is not None:
            found = await self.discover()
            names.update({name.lower(): name for name in found if valid_repository(name)})
        return [name for name in names.values() if self.allowlist.allows(name)]

    async def _refresh_organisations(self) -> None:
        for organisation in self.organisations:
            if time.time() < self.paused_until:
                return
            try:
                self._org_repositories[organisation] = await self.github.list_org_repositories(organisation)
            except RateLimitExhausted as exc:
                self._pause(exc)
            except GitHubError as exc:
                log.warning("poll_org_unavailable", organisation=organisation, error=str(exc))
                self._org_repositories.setdefault(organisation, [])


def _checked(names: Sequence[str], valid: Callable[[str], bool], event: str) -> tuple[str, ...]:
    kept = []
    for name in names:
        if valid(name.strip()):
            kept.append(name.strip())
        else:
            log.warning(event, name=name[:200])
    return tuple(kept)
