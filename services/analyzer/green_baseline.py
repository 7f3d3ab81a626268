"""Fetch the last green log of the same workflow job, to compare a failing log with.

Measured on real fail/pass pairs, the lines a failing log adds to the last green run of the
same job hold most of what a triager reads; so, when GitHub can tell us that run, the
analyzer ranks those lines first. Finding it costs three requests (successful runs of the
branch, their jobs, the job's log), so the answer is cached per repository, workflow, job
and branch (a green log stays a fine baseline for a day), and nothing is fetched when the
GitHub rate-limit budget is low: a baseline improves an excerpt, it is never worth starving
the monitor and the executor. Without a green run (a new job, a first run on a branch) the
single-log analysis is the whole story.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import zlib
from collections import OrderedDict
from dataclasses import dataclass

from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue
from prometheus_client import Counter

from medic.events import FailedJob, FailureDetectedPayload
from medic.github.client import GitHubClient
from medic.github.errors import GitHubError
from medic.github.models import Job, WorkflowRun
from medic.github.ratelimit import RATELIMIT_REMAINING

MIN_REMAINING = 500
"""Below this many GitHub requests left in the window, no baseline is fetched."""
MAX_CACHED_BYTES = 900 * 1024
"""A compressed log above this is not cached (a NATS message carries about 1 MiB)."""
CACHE_TTL_SECONDS = 24 * 3600.0
MAX_BASELINE_BYTES = 2 * 1024 * 1024
MAX_REMEMBERED_ATTEMPTS = 1024
"""Green runs' job lists kept in memory (a few KB each)."""

BASELINES = Counter("medic_analyzer_baselines_total", "Green-baseline lookups by outcome", ["outcome"])


@dataclass(frozen=True)
class GreenLog:
    run_id: int
    text: str


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


class GreenBaselines:
    """The last successful run's log of a failed job, through the GitHub client, cached."""

    def __init__(
        self, github: GitHubClient, kv: KeyValue | None, *, min_remaining: int = MIN_REMAINING
    ) -> None:
        self.github = github
        self.kv = kv
        self.min_remaining = min_remaining
        self._jobs: OrderedDict[tuple[str, int, int], tuple[Job, ...]] = OrderedDict()

    async def for_job(self, failure: FailureDetectedPayload, job: FailedJob) -> GreenLog | None:
        workflow = failure.workflow_path or failure.workflow_name
        key = cache_key(failure.repository, workflow, job.name, failure.branch)
        cached = await self._cached(key)
        if cached is not None:
            BASELINES.labels("cache").inc()
            return cached
        if not budget_allows(self.min_remaining):
            BASELINES.labels("budget_low").inc()
            return None
        try:
            found = await self._find(failure, job, workflow)
        except GitHubError:
            BASELINES.labels("error").inc()
            return None
        BASELINES.labels("found" if found else "none").inc()
        if found is not None:
            await self._store(key, found)
        return found

    async def _find(self, failure: FailureDetectedPayload, job: FailedJob, workflow: str) -> GreenLog | None:
        for branch in dict.fromkeys((failure.branch or None, None)):
            page = await self.github.list_runs(
                failure.repository, status="success", branch=branch, per_page=30
            )
            for run in page.runs:
                same_workflow = run.path == workflow if failure.workflow_path else run.name == workflow
                if run.id == failure.run_id or not same_workflow or run.conclusion != "success":
                    continue
                jobs = await self._jobs_of(failure.repository, run)
                green = next((j for j in jobs if j.name == job.name and j.conclusion == "success"), None)
                if green is None:
                    continue
                log = await self.github.fetch_job_log(
                    failure.repository, green.id, max_bytes=MAX_BASELINE_BYTES
                )
                return GreenLog(run.id, log.text) if log.text else None
        return None

    async def _jobs_of(self, repository: str, run: WorkflowRun) -> tuple[Job, ...]:
        """Jobs of a successful run's latest attempt, asked for once per (run, attempt).

        A finished attempt's jobs never change, and the same few green runs are searched for
        every failure of their repository: asking again cost most of the analyzer's CPU in the
        pipeline bench. A re-run is a new attempt, hence a new key.
        """
        key = (repository.lower(), run.id, run.run_attempt)
        jobs = self._jobs.get(key)
        if jobs is not None:
            self._jobs.move_to_end(key)
            return jobs
        jobs = tuple(await self.github.list_jobs(repository, run.id))
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
