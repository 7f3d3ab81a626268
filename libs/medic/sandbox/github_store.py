"""In-memory state of the sandbox GitHub: repositories, runs and their attempts, jobs, logs.

Plain data and the few state transitions GitHub performs (new run, re-run, progress of an
attempt). Nothing here knows HTTP; ``github_app`` renders these records as GitHub JSON.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

from medic.sandbox.github_logs import success_log
from medic.sandbox.github_scenarios import LogContext, Scenario

LogSource = Callable[[], Iterator[bytes]]
"""Produces a job log chunk by chunk, so huge logs are never held whole in memory."""


def stable_id(text: str, *, digits: int = 9) -> int:
    """A deterministic positive id, so the same repository always has the same id."""
    low = int(10 ** (digits - 1))
    return int(hashlib.sha256(text.encode()).hexdigest(), 16) % (9 * low) + low


def fake_sha(text: str) -> str:
    return hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()


@dataclass
class Repository:
    full_name: str
    id: int
    default_branch: str = "main"
    private: bool = False

    @property
    def owner(self) -> str:
        return self.full_name.split("/", 1)[0]

    @property
    def name(self) -> str:
        return self.full_name.split("/", 1)[1]


@dataclass
class Step:
    name: str
    number: int
    conclusion: str | None
    started_at: datetime
    completed_at: datetime


@dataclass
class Job:
    id: int
    run_id: int
    run_attempt: int
    name: str
    status: str
    conclusion: str | None
    created_at: datetime
    started_at: datetime
    completed_at: datetime | None
    steps: list[Step]
    log: LogSource | None
    """None: the log has expired or was never written (GitHub answers 404)."""
    runner_id: int | None = 1000012345
    runner_name: str | None = "GitHub Actions 1000012345"


@dataclass
class Attempt:
    number: int
    status: str
    conclusion: str | None
    created_at: datetime
    run_started_at: datetime
    updated_at: datetime
    jobs: list[Job]


@dataclass
class Run:
    id: int
    repository: Repository
    workflow_name: str
    workflow_path: str
    workflow_id: int
    run_number: int
    event: str
    head_branch: str
    head_sha: str
    commit_message: str
    actor_login: str
    pull_request_numbers: list[int]
    scenario: Scenario | None
    attempts: list[Attempt] = field(default_factory=list)

    @property
    def latest(self) -> Attempt:
        return self.attempts[-1]


@dataclass
class Cache:
    id: int
    key: str
    ref: str
    size_in_bytes: int
    created_at: datetime


def bytes_source(data: bytes, *, chunk_size: int = 64 * 1024) -> LogSource:
    def chunks() -> Iterator[bytes]:
        view = memoryview(data)
        for start in range(0, len(view), chunk_size):
            yield bytes(view[start : start + chunk_size])

    return chunks


def now_utc() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


class GitHubStore:
    """Every record the sandbox knows about, with GitHub-like id allocation."""

    def __init__(self) -> None:
        self.repositories: dict[str, Repository] = {}
        self.runs: dict[int, Run] = {}
        self.jobs: dict[int, Job] = {}
        self.caches: dict[str, list[Cache]] = {}
        self._run_ids = itertools.count(9_100_000_001)
        self._job_ids = itertools.count(31_400_000_001)
        self._cache_ids = itertools.count(501)
        self._run_numbers: dict[str, Iterator[int]] = {}

    def repository(self, full_name: str) -> Repository:
        key = full_name.lower()
        if key not in self.repositories:
            self.repositories[key] = Repository(full_name=full_name, id=stable_id(key))
        return self.repositories[key]

    def find_repository(self, owner: str, name: str) -> Repository | None:
        return self.repositories.get(f"{owner}/{name}".lower())

    def runs_of(self, repository: Repository) -> list[Run]:
        """Newest first, as GitHub lists them."""
        mine = [run for run in self.runs.values() if run.repository is repository]
        return sorted(mine, key=lambda run: run.id, reverse=True)

    def add_failed_run(
        self,
        repository: str,
        scenario: Scenario,
        *,
        branch: str = "main",
        event: str = "push",
        actor_login: str = "octocat",
        pull_request_numbers: list[int] | None = None,
        log: LogSource | None = None,
        log_available: bool = True,
        head_sha: str | None = None,
    ) -> Run:
        """A completed run whose scenario job failed and whose other job passed."""
        run = self._new_run(
            repository, scenario, branch, event, actor_login, pull_request_numbers, head_sha=head_sha
        )
        created = now_utc()
        failing = self._scenario_job(run, 1, created, passed=False, log=log, log_available=log_available)
        passing = self._job(run, 1, "typecheck", created, passed=True)
        run.attempts.append(
            Attempt(1, "completed", "failure", created, created, created, [failing, passing]),
        )
        self.runs[run.id] = run
        return run

    def add_passed_run(
        self,
        repository: str,
        *,
        branch: str = "main",
        head_sha: str | None = None,
        job_names: tuple[str, ...] = ("test", "typecheck"),
    ) -> Run:
        """A completed run whose jobs all passed."""
        run = self._new_run(repository, None, branch, "push", "octocat", None, head_sha=head_sha)
        created = now_utc()
        jobs = [self._job(run, 1, name, created, passed=True) for name in job_names]
        run.attempts.append(Attempt(1, "completed", "success", created, created, created, jobs))
        self.runs[run.id] = run
        return run

    def _new_run(
        self,
        repository: str,
        scenario: Scenario | None,
        branch: str,
        event: str,
        actor_login: str,
        pull_request_numbers: list[int] | None,
        *,
        head_sha: str | None,
    ) -> Run:
        repo = self.repository(repository)
        run_id = next(self._run_ids)
        workflow_path = ".github/workflows/ci.yml"
        counter = self._run_numbers.setdefault(repo.full_name.lower(), itertools.count(101))
        return Run(
            id=run_id,
            repository=repo,
            workflow_name="CI",
            workflow_path=workflow_path,
            workflow_id=stable_id(f"{repo.full_name}:{workflow_path}", digits=8),
            run_number=next(counter),
            event=event,
            head_branch=branch,
            head_sha=head_sha or fake_sha(f"{repo.full_name}:{run_id}"),
            commit_message=scenario.commit_message if scenario else "Update README",
            actor_login=actor_login,
            pull_request_numbers=list(pull_request_numbers or []),
            scenario=scenario,
        )

    def start_rerun(self, run: Run, *, failed_only: bool) -> Attempt:
        """A new queued attempt: failed jobs (or all) get fresh ids; passed ones carry over."""
        previous = run.latest
        created = now_utc()
        number = previous.number + 1
        jobs: list[Job] = []
        for job in previous.jobs:
            if failed_only and job.conclusion == "success":
                jobs.append(job)
                continue
            queued = Job(
                id=next(self._job_ids),
                run_id=run.id,
                run_attempt=number,
                name=job.name,
                status="queued",
                conclusion=None,
                created_at=created,
                started_at=created,
                completed_at=None,
                steps=[],
                log=None,
                runner_id=None,
                runner_name=None,
            )
            self.jobs[queued.id] = queued
            jobs.append(queued)
        attempt = Attempt(number, "queued", None, created, created, created, jobs)
        run.attempts.append(attempt)
        return attempt

    def progress(self, run: Run, attempt: Attempt, status: str) -> None:
        attempt.status = status
        attempt.updated_at = now_utc()
        for job in attempt.jobs:
            if job.run_attempt == attempt.number and job.status != "completed":
                job.status = status
                job.runner_id, job.runner_name = 1000012346, "GitHub Actions 1000012346"

    def complete(self, run: Run, attempt: Attempt) -> None:
        """Transient scenarios heal on re-run; the others fail the same way again."""
        healed = run.scenario is None or run.scenario.transient
        finished = now_utc()
        for index, job in enumerate(attempt.jobs):
            if job.run_attempt != attempt.number:
                continue
            is_scenario_job = run.scenario is not None and job.name == run.scenario.job_name and index == 0
            replacement = (
                self._scenario_job(
                    run, attempt.number, job.created_at, passed=healed, log=None, log_available=True
                )
                if is_scenario_job
                else self._job(run, attempt.number, job.name, job.created_at, passed=True)
            )
            del self.jobs[replacement.id]
            replacement.id = job.id
            self.jobs[job.id] = replacement
            attempt.jobs[index] = replacement
            replacement.completed_at = finished
        attempt.status = "completed"
        attempt.conclusion = "success" if healed else "failure"
        attempt.updated_at = finished

    def delete_caches(self, repository: Repository, key: str, ref: str | None) -> list[Cache]:
        kept: list[Cache] = []
        deleted: list[Cache] = []
        for cache in self.caches.get(repository.full_name.lower(), []):
            matches = cache.key == key and (ref is None or cache.ref == ref)
            (deleted if matches else kept).append(cache)
        self.caches[repository.full_name.lower()] = kept
        return deleted

    def add_cache(
        self, repository: str, key: str, *, ref: str = "refs/heads/main", size: int = 1024
    ) -> Cache:
        repo = self.repository(repository)
        cache = Cache(next(self._cache_ids), key, ref, size, now_utc())
        self.caches.setdefault(repo.full_name.lower(), []).append(cache)
        return cache

    def _scenario_job(
        self,
        run: Run,
        attempt: int,
        created: datetime,
        *,
        passed: bool,
        log: LogSource | None,
        log_available: bool,
    ) -> Job:
        assert run.scenario is not None
        scenario = run.scenario
        if passed:
            return self._job(run, attempt, scenario.job_name, created, passed=True)
        ctx = LogContext(run.repository.full_name, run.workflow_path, run.head_branch, run.head_sha, created)
        source = log or bytes_source(scenario.build_log(ctx).encode())
        steps = _steps(created, failing=scenario.failing_step, failing_conclusion=scenario.step_conclusion)
        return self._new_job(
            run,
            attempt,
            scenario.job_name,
            created,
            scenario.job_conclusion,
            steps,
            source if log_available else None,
        )

    def _job(self, run: Run, attempt: int, name: str, created: datetime, *, passed: bool) -> Job:
        text = success_log(
            started_at=created,
            repository=run.repository.full_name,
            workflow_path=run.workflow_path,
            branch=run.head_branch,
        )
        steps = _steps(created, failing=None if passed else "Run make check", failing_conclusion="failure")
        return self._new_job(
            run,
            attempt,
            name,
            created,
            "success" if passed else "failure",
            steps,
            bytes_source(text.encode()),
        )

    def _new_job(
        self,
        run: Run,
        attempt: int,
        name: str,
        created: datetime,
        conclusion: str,
        steps: list[Step],
        log: LogSource | None,
    ) -> Job:
        job = Job(
            id=next(self._job_ids),
            run_id=run.id,
            run_attempt=attempt,
            name=name,
            status="completed",
            conclusion=conclusion,
            created_at=created,
            started_at=created,
            completed_at=created,
            steps=steps,
            log=log,
        )
        self.jobs[job.id] = job
        return job


def _steps(at: datetime, *, failing: str | None, failing_conclusion: str) -> list[Step]:
    """Set-up steps pass, the failing step fails, later user steps are skipped, post steps run."""
    names = ["Set up job", "Run actions/checkout@v4", "Set up toolchain"]
    conclusions: list[str | None] = ["success", "success", "success"]
    if failing is None:
        names += ["Run make check", "Upload coverage"]
        conclusions += ["success", "success"]
    else:
        names += [failing, "Upload coverage"]
        conclusions += [failing_conclusion, "skipped"]
    names += ["Post Run actions/checkout@v4", "Complete job"]
    conclusions += ["success", "success"]
    return [
        Step(name, i + 1, conclusion, at, at)
        for i, (name, conclusion) in enumerate(zip(names, conclusions, strict=True))
    ]
