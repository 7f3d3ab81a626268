"""Analyzer wiring: FailureDetected in; rules first, cache, then the model; AnalysisCompleted out."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import Counter

from medic.bus import Bucket, Bus, Delivery, open_key_value
from medic.confidence import SECOND_OPINION_BELOW
from medic.events import (
    AnalysisCompleted,
    AnalysisMethod,
    Event,
    FailedJob,
    FailureDetected,
    FailureDetectedPayload,
)
from medic.github.client import GitHubClient
from medic.llm.client import ModelClient
from medic.logstore import LogNotFound, LogStore
from medic.redact import redact
from medic.runtime import Service
from medic.services.analyzer.analysis import LogAnalysis
from medic.services.analyzer.cache import AnalysisCache
from medic.services.analyzer.classify import analyze_failure, is_confident
from medic.services.analyzer.green_baseline import CACHE_TTL_SECONDS, GreenBaselines, GreenLog
from medic.services.analyzer.knowledge import KnowledgeBase
from medic.services.analyzer.redaction import redact_excerpt
from medic.services.analyzer.second_opinion import refine_with_model, rules_only

ANALYSES = Counter("medic_analyses_total", "Analyses by method and category", ["method", "category"])


class AnalyzerService(Service):
    name = "analyzer"
    consumes = (FailureDetected,)
    produces = (AnalysisCompleted,)
    concurrency = 4  # CPU-bound scanning; more would only queue on two cores

    def __init__(
        self,
        *,
        bus: Bus,
        knowledge_for: Callable[[str], KnowledgeBase],
        model: ModelClient | None,
        github: GitHubClient | None = None,
    ) -> None:
        self.bus = bus
        self.github = github
        """Finds the last green log of a failed job; None analyses each log alone."""
        self._green: GreenBaselines | None = None
        self.knowledge_for = knowledge_for
        """The knowledge base for a repository (shipped + organisation + repository rules)."""
        self.model = model
        self._cache: AnalysisCache | None = None
        self._logs: LogStore | None = None

    async def start(self) -> None:
        if self.model is not None:
            self.model.warm()
        self._cache = await AnalysisCache.open(self.bus.js, self.bus.topology.bucket(Bucket.ANALYSIS_CACHE))
        self._logs = await LogStore.open(self.bus.js, self.bus.topology.bucket(Bucket.LOGS))
        if self.github is not None:
            kv = await open_key_value(
                self.bus.js, self.bus.topology.bucket(Bucket.GREEN_LOGS), ttl=CACHE_TTL_SECONDS
            )
            self._green = GreenBaselines(self.github, kv)

    async def _baselines(self, failure: FailureDetectedPayload, jobs: list[FailedJob]) -> dict[int, GreenLog]:
        """The green log of each job that has one (and a log of its own to compare)."""
        if self._green is None:
            return {}
        found: dict[int, GreenLog] = {}
        for job in jobs:
            if job.log_tail.strip():
                green = await self._green.for_job(failure, job)
                if green is not None:
                    found[job.job_id] = green
        return found

    async def _with_full_log(self, job: FailedJob) -> FailedJob:
        """The job with its whole bounded tail when the event carried only part of it."""
        if job.log_ref is None or self._logs is None:
            return job
        try:
            text = await self._logs.get(job.log_ref)
        except LogNotFound:
            return job  # the inline tail is still there; the excerpt is just shorter
        return job.model_copy(update={"log_tail": text})

    def ready(self) -> bool:
        return self._cache is not None

    async def handle(self, event: Event, delivery: Delivery) -> None:
        if not isinstance(event, FailureDetected):
            return
        failure = event.payload
        jobs = [await self._with_full_log(job) for job in failure.failed_jobs]
        green = await self._baselines(failure, jobs)
        rules = analyze_failure(
            jobs,
            knowledge_base=self.knowledge_for(failure.repository),
            history=failure.history,
            baselines={job_id: log.text for job_id, log in green.items()},
        )
        has_log = any(job.log_tail.strip() for job in jobs)
        result = _redacted(await self._refine(rules, repository=failure.repository, cacheable=has_log))
        ack = await self.bus.publish(
            AnalysisCompleted.answering(
                event,
                actor=self.name,
                payload=result.to_payload(
                    repository=failure.repository, run_id=failure.run_id, run_attempt=failure.run_attempt
                ).model_copy(
                    update={
                        "branch": failure.branch,
                        "head_sha": failure.head_sha,
                        "baseline_run_id": next((log.run_id for log in green.values()), None),
                    }
                ),
            )
        )
        if not ack.duplicate:
            ANALYSES.labels(result.method.value, result.category.value).inc()

    async def _refine(self, rules: LogAnalysis, *, repository: str, cacheable: bool = True) -> LogAnalysis:
        """Rules when they are sure; else a cached answer for the fingerprint; else the model.

        Without any log text the cache is neither read nor written: a verdict reached without
        the log must never be served to another failure that happens to share its fingerprint.
        """
        if is_confident(rules):
            return rules_only(rules)
        assert self._cache is not None
        cached = await self._cache.get(repository, rules) if cacheable else None
        if cached is not None:
            return cached
        refined = await refine_with_model(rules, client=self.model, confidence_threshold=SECOND_OPINION_BELOW)
        if refined.method is AnalysisMethod.MODEL and cacheable:
            await self._cache.put(repository, refined)
        return refined


def _redacted(analysis: LogAnalysis) -> LogAnalysis:
    """Excerpt lines leave the process (bus, database, Slack): no secrets in them, ever."""
    lines = redact_excerpt(analysis.excerpt)
    return analysis.model_copy(update={"excerpt": lines, "summary": redact(analysis.summary)})
