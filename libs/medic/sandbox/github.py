"""A local stand-in for GitHub Actions: REST API, job logs, re-runs and signed webhooks.

``medic run`` mounts it when no GitHub credentials are configured, and the tests serve it on
a real port, so the GitHub client is exercised over HTTP exactly as it is in production.
Modules: ``github_store`` (state), ``github_payloads`` (GitHub JSON), ``github_app`` (routes),
``github_webhooks`` (signed delivery), ``github_scenarios`` (failure kinds and their logs),
``github_limits`` (rate budget and fault modes), ``serving`` (serve on a free port).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import time
from collections.abc import Coroutine
from dataclasses import asdict
from typing import Any

from fastapi import FastAPI

from medic.sandbox import github_payloads as payloads
from medic.sandbox.github_app import build_app
from medic.sandbox.github_git import GitStore, register_git_beyond_contract, register_git_routes
from medic.sandbox.github_limits import FaultModes, RateBudget
from medic.sandbox.github_orgs import SandboxApps
from medic.sandbox.github_payloads import Links
from medic.sandbox.github_scenarios import SCENARIOS, Scenario, scenario_mix, scenario_named
from medic.sandbox.github_store import Attempt, GitHubStore, LogSource, Run
from medic.sandbox.github_webhooks import Delivery, WebhookSender

DEFAULT_REPOSITORIES = ("octo-org/octo-repo", "octo-org/billing-api", "octo-org/web-frontend")
DEFAULT_LINKS = Links(api="http://sandbox.invalid")

__all__ = ["SCENARIOS", "SandboxGitHub", "Scenario", "create_sandbox_github"]


class SandboxGitHub:
    """The sandbox's state plus its ASGI ``app``; tests seed it directly through the methods."""

    def __init__(
        self,
        *,
        webhook_url: str | None,
        webhook_secret: str,
        rerun_delay_seconds: float = 0.3,
        token_budget: int = 5000,
        anonymous_budget: int = 600,
    ) -> None:
        self.store = GitHubStore()
        self.git = GitStore()
        """Repository contents, refs, pull requests and checks (``github_git``)."""
        self.webhooks = WebhookSender(url=webhook_url, secret=webhook_secret)
        self.budget = RateBudget(token_limit=token_budget, anonymous_limit=anonymous_budget)
        self.modes = FaultModes()
        self.apps = SandboxApps()
        self.rerun_delay_seconds = rerun_delay_seconds
        self._log_url_key = secrets.token_bytes(32)
        self._simulated = 0
        self._background: set[asyncio.Task[None]] = set()
        self.app: FastAPI = build_app(
            self,
            more_routes=(lambda app: register_git_routes(app, self),),
            beyond=(lambda app: register_git_beyond_contract(app, self),),
        )

    # --- seeding -------------------------------------------------------------------------

    def add_failed_run(
        self,
        repository: str,
        scenario: Scenario | str,
        *,
        branch: str = "main",
        event: str = "push",
        pull_request_numbers: list[int] | None = None,
        log: LogSource | None = None,
        log_available: bool = True,
        head_sha: str | None = None,
    ) -> Run:
        """A completed failed run (no webhook); ``log`` overrides the scenario's log text."""
        chosen = scenario_named(scenario) if isinstance(scenario, str) else scenario
        return self.store.add_failed_run(
            repository,
            chosen,
            branch=branch,
            event=event,
            pull_request_numbers=pull_request_numbers,
            log=log,
            log_available=log_available,
            head_sha=head_sha,
        )

    def add_passed_run(
        self,
        repository: str,
        *,
        branch: str = "main",
        head_sha: str | None = None,
        job_names: tuple[str, ...] = ("test", "typecheck"),
    ) -> Run:
        """A completed green run: a commit's or its parent's history, or a job's green baseline."""
        return self.store.add_passed_run(repository, branch=branch, head_sha=head_sha, job_names=job_names)

    def add_cache(self, repository: str, key: str, *, ref: str = "refs/heads/main") -> None:
        self.store.add_cache(repository, key, ref=ref)

    def simulate(
        self,
        failures: int,
        *,
        repositories: list[str] | None = None,
        scenarios: list[str] | None = None,
        links: Links = DEFAULT_LINKS,
    ) -> list[dict[str, Any]]:
        """Create failing runs of varied kinds and deliver their ``completed`` webhooks."""
        repos = list(repositories or DEFAULT_REPOSITORIES)
        if scenarios:
            named = [scenario_named(name) for name in scenarios]
            kinds = [named[i % len(named)] for i in range(failures)]
        else:
            kinds = scenario_mix(failures, start=self._simulated)
        self._simulated += failures
        created, deliveries = [], []
        for index, scenario in enumerate(kinds):
            branch = "main" if index % 3 else f"feature/change-{index}"
            prs = [] if branch == "main" else [100 + index]
            run = self.store.add_failed_run(
                repos[index % len(repos)],
                scenario,
                branch=branch,
                event="push" if not prs else "pull_request",
                pull_request_numbers=prs,
            )
            deliveries.append(self._event("completed", run, run.latest, links))
            created.append(
                {
                    "repository": run.repository.full_name,
                    "run_id": run.id,
                    "run_attempt": 1,
                    "scenario": scenario.name,
                    "category": scenario.category.value,
                    "transient": scenario.transient,
                    "failed_job_id": run.latest.jobs[0].id,
                }
            )
        self.webhooks.send_in_background(deliveries)
        return created

    # --- behaviour used by the routes ----------------------------------------------------

    def start_rerun(self, run: Run, *, failed_only: bool, links: Links) -> Attempt:
        attempt = self.store.start_rerun(run, failed_only=failed_only)
        self.spawn(self._play_rerun(run, attempt, links))
        return attempt

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Background play (a re-run, checks concluding) that :meth:`drain` waits for."""
        task = asyncio.create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _play_rerun(self, run: Run, attempt: Attempt, links: Links) -> None:
        """queued -> in_progress -> completed, each announced; shuffle mode sends all three at the end."""
        hold = self.webhooks.shuffle
        pending: list[Delivery] = [self._event("requested", run, attempt, links)]
        if not hold:
            self.webhooks.send_in_background(pending)
            pending = []
        await asyncio.sleep(self.rerun_delay_seconds / 3)
        self.store.progress(run, attempt, "in_progress")
        pending.append(self._event("in_progress", run, attempt, links))
        if not hold:
            self.webhooks.send_in_background(pending)
            pending = []
        await asyncio.sleep(self.rerun_delay_seconds * 2 / 3)
        self.store.complete(run, attempt)
        pending.append(self._event("completed", run, attempt, links))
        self.webhooks.send_in_background(pending)

    def _event(self, action: str, run: Run, attempt: Attempt, links: Links) -> Delivery:
        return self.webhooks.prepare("workflow_run", payloads.workflow_run_event(action, run, attempt, links))

    def sign_log_url(self, job_id: int, expires: int) -> str:
        message = f"{job_id}:{expires}".encode()
        return hmac.new(self._log_url_key, message, hashlib.sha256).hexdigest()

    async def abandon(self) -> None:
        """Stop the re-runs still playing (CI that never concludes, for a test that ends first)."""
        tasks = list(self._background)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def drain(self) -> None:
        """Wait until running re-runs finished and queued webhooks were delivered."""
        while self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)
        await self.webhooks.drain()

    # --- control -------------------------------------------------------------------------

    def set_modes(self, spec: dict[str, Any]) -> None:
        if (seconds := spec.get("rate_limit_exhausted_for_seconds")) is not None:
            self.modes.rate_limited_until = time.time() + float(seconds)
        if (errors := spec.get("server_errors")) is not None:
            self.modes.server_errors = int(errors)
        if (latency := spec.get("latency_seconds")) is not None:
            self.modes.latency_seconds = min(max(float(latency), 0.0), 5.0)
        if (duplicates := spec.get("webhook_duplicates")) is not None:
            self.webhooks.duplicates = bool(duplicates)
        if (shuffle := spec.get("webhook_shuffle")) is not None:
            self.webhooks.shuffle = bool(shuffle)

    def describe_modes(self) -> dict[str, Any]:
        return {
            "rate_limit_exhausted_until": self.modes.exhausted_reset(),
            "server_errors": self.modes.server_errors,
            "latency_seconds": self.modes.latency_seconds,
            "webhook_duplicates": self.webhooks.duplicates,
            "webhook_shuffle": self.webhooks.shuffle,
        }

    def describe_state(self) -> dict[str, Any]:
        runs = [
            {
                "repository": run.repository.full_name,
                "run_id": run.id,
                "scenario": run.scenario.name if run.scenario else None,
                "attempts": [
                    {
                        "run_attempt": a.number,
                        "status": a.status,
                        "conclusion": a.conclusion,
                        "jobs": [{"id": j.id, "name": j.name, "conclusion": j.conclusion} for j in a.jobs],
                    }
                    for a in run.attempts
                ],
            }
            for run in self.store.runs.values()
        ]
        return {
            "repositories": sorted(repo.full_name for repo in self.store.repositories.values()),
            "runs": runs,
            "modes": self.describe_modes(),
            "webhook_deliveries": [asdict(record) for record in list(self.webhooks.history)[-50:]],
            "rate_limit": {
                key: asdict(window) for key, window in self.budget.windows.items() if key == "<anonymous>"
            }
            | {"tokens": len(self.budget.windows)},
        }


def create_sandbox_github(
    *,
    webhook_url: str | None,
    webhook_secret: str,
    rerun_delay_seconds: float = 0.3,
    token_budget: int = 5000,
    anonymous_budget: int = 600,
) -> SandboxGitHub:
    """Build a sandbox GitHub; serve ``.app`` alone with uvicorn or mount it under a prefix."""
    return SandboxGitHub(
        webhook_url=webhook_url,
        webhook_secret=webhook_secret,
        rerun_delay_seconds=rerun_delay_seconds,
        token_budget=token_budget,
        anonymous_budget=anonymous_budget,
    )
