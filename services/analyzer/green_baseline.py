"""Fetch the last green log of the same workflow job, to compare a failing log with.

Measured on real fail/pass pairs, the lines a failing log adds to the last green run of the
same job hold most of what a triager reads; so, when GitHub can tell us that run, the
analyzer ranks those lines first. The monitor has usually told us already: the page of the
branch's runs it reads for the failure's history names the workflow's last green run there
(``RunHistory.last_green_run_id``), or says there is none. Only without that word (an event
from an older monitor, a run without a branch) are the branch's successful runs searched.
Then the green run's jobs and the job's log are fetched; the answer is cached per
repository, workflow, job and branch (a green log stays a fine baseline for a day), and so
is "none found", for ten minutes in this process (without it, a repository that has never
been green cost two searches for every failure). Identical lookups in flight at once share
one (a push fails many runs together). Nothing is fetched when the GitHub rate-limit budget
is low: a baseline improves an excerpt, it is never worth starving the monitor and the
executor. Without a green run (a new job, a first run on a branch) the single-log analysis
is the whole story.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
import zlib
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass

from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue
from prometheus_client import Counter

from medic.events import FailedJob, FailureDetectedPayload
from medic.github.client import GitHubClient
from medic.github.errors import GitHubError
from medic.github.models import Job, WorkflowRun
from medic.github.ratelimit import RATELIMIT_REMAINING
from medic.singleflight import SingleFlight

MIN_REMAINING = 500
"""Below this many GitHub requests left in the window, no baseline is fetched."""
MAX_CACHED_BYTES = 900 * 1024
"""A compressed log above this is not cached (a NATS message carries about 1 MiB)."""
CACHE_TTL_SECONDS = 24 * 3600.0
MAX_BASELINE_BYTES = 2 * 1024 * 1024
MAX_REMEMBERED_ATTEMPTS = 1024
"""Green runs' job lists kept in memory (a few KB each)."""

NONE_TTL_SECONDS = 600.0
"""How long "no green log" is believed: a job that turns green is compared at most this late
(at once when the monitor names the green run)."""
MAX_REMEMBERED_MISSES = 4096

BASELINES = Counter("medic_analyzer_baselines_total", "Green-baseline lookups by outcome", ["outcome"])


@dataclass(frozen=True)
class GreenLog:
    run_id: int
    text: str


@dataclass(frozen=True)
class GreenRun:
    run_id: int
    run_attempt: int


def named_green_run(failure: FailureDetectedPayload) -> GreenRun | None:
    """The green run the monitor saw on the failure's branch, if it named one."""
    history = failure.history
    if history is None or history.last_green_run_id is None or history.last_green_run_id == failure.run_id:
        return None
    return GreenRun(history.last_green_run_id, history.last_green_run_attempt or 1)


def search_scopes(failure: FailureDetectedPayload) -> tuple[str | None, ...]:
    """Where successful runs are searched, in order (None: every branch).

    The branch first, then every branch; but not the branch when the monitor read its newest
    runs for this failure: it named the last green run there, or there was none to name.
    """
    history = failure.history
    if history is not None and history.branch_runs_read:
        return (None,)
    return tuple(dict.fromkeys((failure.branch or None, None)))


def cache_key(repository: str, workflow: str, job: str, branch: str) -> str:
    digest = hashlib.sha256("\0".join((repository.lower(), workflow, job, branch)).encode("utf-8", "replace"))
    return digest.hexdigest()[:40]


def budget_allows(min_remaining: int = MIN_REMAINING) -> bool:
    """False when the GitHub client last saw fewer than ``min_remaining`` core requests left.

    Reads the one gauge: ``REGISTRY.get_sample_value`` collects every metric of the process,
    which took 3% of the pipeline's CPU when called for every failed job."""
    remaining = next(
        (
            sample.value
            for metric in RATELIMIT_REMAINING.collect()
            for sample in metric.samples
            if sample.labels.get("resource") == "core"
        ),
        None,
    )
    return remaining is None or remaining >= min_remaining


class RecentMisses:
    """Keys whose lookup found nothing, believed for ``ttl`` seconds; the oldest go past ``limit``."""

    def __init__(self, ttl: float, clock: Callable[[], float], limit: int = MAX_REMEMBERED_MISSES) -> None:
        self.ttl = ttl
        self.clock = clock
        self.limit = limit
        self._until: OrderedDict[Hashable, float] = OrderedDict()

    def add(self, key: Hashable) -> None:
        self._until[key] = self.clock() + self.ttl
        self._until.move_to_end(key)
        while len(self._until) > self.limit:
            self._until.popitem(last=False)

    def holds(self, key: Hashable) -> bool:
        until = self._until.get(key)
        if until is None:
            return False
        if until <= self.clock():
            del self._until[key]
            return False
        return True

    def discard(self, key: Hashable) -> None:
        self._until.pop(key, None)


class GreenBaselines:
    """The last successful run's log of a failed job, through the GitHub client, cached."""

    def __init__(
        self,
        github: GitHubClient,
        kv: KeyValue | None,
        *,
        min_remaining: int = MIN_REMAINING,
        none_ttl_seconds: float = NONE_TTL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.github = github
        self.kv = kv
        self.min_remaining = min_remaining
        self._jobs: OrderedDict[tuple[str, int, int], tuple[Job, ...]] = OrderedDict()
        self._no_log = RecentMisses(none_ttl_seconds, clock)
        """Cache keys (repository, workflow, job, branch) whose lookup found no green log."""
        self._no_green_run = RecentMisses(none_ttl_seconds, clock)
        """(repository, workflow, branch or every branch) whose successful runs held none of it."""
        self._lookups: SingleFlight[tuple[str, int | None], GreenLog | None] = SingleFlight(
            "analyzer_green_baseline"
        )
        self._searches: SingleFlight[tuple[str, str | None], tuple[WorkflowRun, ...]] = SingleFlight(
            "analyzer_green_runs"
        )

    async def for_job(self, failure: FailureDetectedPayload, job: FailedJob) -> GreenLog | None:
        workflow = failure.workflow_path or failure.workflow_name
        key = cache_key(failure.repository, workflow, job.name, failure.branch)
        named = named_green_run(failure)
        if named is None and self._no_log.holds(key):  # before the bucket: no round trip at all
            BASELINES.labels("none_cached").inc()
            return None
        cached = await self._cached(key)
        if cached is not None:
            BASELINES.labels("cache").inc()
            return cached
        if not budget_allows(self.min_remaining):
            BASELINES.labels("budget_low").inc()
            return None
        return await self._lookups.run(
            (key, named.run_id if named else None), lambda: self._lookup(failure, job, workflow, key, named)
        )

    async def _lookup(
        self, failure: FailureDetectedPayload, job: FailedJob, workflow: str, key: str, named: GreenRun | None
    ) -> GreenLog | None:
        try:
            found = await self._find(failure, job, workflow, named)
        except GitHubError:
            BASELINES.labels("error").inc()
            return None  # not remembered: the next failure asks again
        BASELINES.labels("found" if found else "none").inc()
        if found is None:
            self._no_log.add(key)
            return None
        self._no_log.discard(key)
        repository = failure.repository.lower()
        for branch in (failure.branch or None, None):  # the monitor named one: these were wrong
            self._no_green_run.discard((repository, workflow, branch))
        await self._store(key, found)
        return found

    async def _find(
        self, failure: FailureDetectedPayload, job: FailedJob, workflow: str, named: GreenRun | None
    ) -> GreenLog | None:
        found = await self._green_job(failure.repository, [named] if named else [], job.name)
        for branch in search_scopes(failure):
            if found is not None:
                break
            runs = await self._green_runs(failure, workflow, branch)
            found = await self._green_job(failure.repository, runs, job.name)
        if found is None:
            return None
        run_id, green = found
        log = await self.github.fetch_job_log(failure.repository, green.id, max_bytes=MAX_BASELINE_BYTES)
        return GreenLog(run_id, log.text) if log.text else None

    async def _green_runs(
        self, failure: FailureDetectedPayload, workflow: str, branch: str | None
    ) -> list[GreenRun]:
        """Successful runs of the workflow, newest first: on ``branch``, or on every branch."""
        repository = failure.repository.lower()
        scope = (repository, workflow, branch)
        if self._no_green_run.holds(scope):
            return []
        runs = await self._searches.run(
            (repository, branch), lambda: self._successful_runs(failure.repository, branch)
        )
        by_path = bool(failure.workflow_path)
        mine = [
            GreenRun(run.id, run.run_attempt)
            for run in runs
            if (run.path if by_path else run.name) == workflow
            and run.id != failure.run_id
            and run.conclusion == "success"
        ]
        if not mine:
            self._no_green_run.add(scope)
        return mine

    async def _successful_runs(self, repository: str, branch: str | None) -> tuple[WorkflowRun, ...]:
        page = await self.github.list_runs(repository, status="success", branch=branch, per_page=30)
        return page.runs

    async def _green_job(self, repository: str, runs: list[GreenRun], name: str) -> tuple[int, Job] | None:
        """The first of ``runs`` whose job ``name`` passed, with that job."""
        for run in runs:
            jobs = await self._jobs_of(repository, run)
            green = next((j for j in jobs if j.name == name and j.conclusion == "success"), None)
            if green is not None:
                return run.run_id, green
        return None

    async def _jobs_of(self, repository: str, run: GreenRun) -> tuple[Job, ...]:
        """Jobs of a successful run's latest attempt, asked for once per (run, attempt).

        A finished attempt's jobs never change, and the same few green runs are searched for
        every failure of their repository: asking again cost most of the analyzer's CPU in the
        pipeline bench. A re-run is a new attempt, hence a new key.
        """
        key = (repository.lower(), run.run_id, run.run_attempt)
        jobs = self._jobs.get(key)
        if jobs is not None:
            self._jobs.move_to_end(key)
            return jobs
        jobs = tuple(await self.github.list_jobs(repository, run.run_id))
        self._jobs[key] = jobs
        while len(self._jobs) > MAX_REMEMBERED_ATTEMPTS:
            self._jobs.popitem(last=False)
        return jobs

    async def _cached(self, key: str) -> GreenLog | None:
        if self.kv is None:
            return None
        with contextlib.suppress(KeyNotFoundError, ValueError, zlib.error):
            entry = await self.kv.get(key)
            if entry.value:
                document = json.loads(zlib.decompress(entry.value))
                return GreenLog(int(document["run_id"]), str(document["text"]))
        return None

    async def _store(self, key: str, found: GreenLog) -> None:
        if self.kv is None:
            return
        blob = zlib.compress(
            json.dumps({"run_id": found.run_id, "text": found.text}).encode("utf-8", "replace")
        )
        if len(blob) <= MAX_CACHED_BYTES:
            await self.kv.put(key, blob)
