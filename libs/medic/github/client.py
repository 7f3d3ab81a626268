"""The GitHub Actions client ci-medic's monitor and executor use.

githubkit builds the requests (paths, parameters, auth, API version header); this class maps
GitHub's JSON onto our own small models and adds what the services need around it: bounded
retries (stamina) on 5xx, timeouts and connection errors, GitHub's rate-limit rules, Prometheus
metrics, and a small error hierarchy. One pooled transport is shared by every call
(githubkit opens a short-lived client per request when not used as a context manager, which
would otherwise defeat connection reuse). The transport is aiohttp's, under httpx's API
(``httpx-aiohttp``, by an httpx maintainer; the OpenAI SDK offers the same): a request cost
half the CPU of httpcore's, whose pool and anyio streams were most of the services' CPU in
the pipeline bench.

At most ``max_in_flight`` requests are on the wire at once. GitHub asks integrations not to
send a token's requests concurrently (its secondary rate limits), and the connection pool
(httpcore) checks every pooled connection twice per request: in the pipeline bench, with a
connection per concurrent handler, a request cost about twice the CPU it costs on a pool of
a few connections. A request waiting for a slot has sent nothing; retries wait outside it.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from functools import partial
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, Self, TypeVar

import httpx
import stamina
from githubkit import GitHub, TokenAuthStrategy, UnauthAuthStrategy
from githubkit.exception import RequestError, RequestFailed, RequestTimeout
from githubkit.utils import UNSET
from httpx_aiohttp import AiohttpTransport

from medic.conclusions import job_failed
from medic.github.auth import GitHubAppAuth, InstallationAuth, InstallationAuthStrategy
from medic.github.errors import GitHubError, GitHubUnavailable, NotFound, RateLimitExhausted
from medic.github.logs import LogTail
from medic.github.mapping import error_message as _error_message
from medic.github.mapping import job_from_json as _job_from_json
from medic.github.mapping import run_from_json as _run_from_json
from medic.github.models import Job, JobLog, RunsPage, WorkflowRun
from medic.github.ratelimit import observe, observe_failure, rate_limit_wait
from medic.telemetry import trace_client

if TYPE_CHECKING:
    from medic.config import Settings

T = TypeVar("T")

__all__ = ["GitHubClient"]

ACCOUNT_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})$")
"""GitHub user and organisation logins: letters, digits and single hyphens, at most 39."""

RETRY_ATTEMPTS = 6
MAX_IN_FLIGHT = 8
"""Requests one client has on the wire at once (``github_max_in_flight``)."""


class _Transient(Exception):
    """Retry me: a 5xx answer or a transport failure."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class _RateLimited(Exception):
    """Retry me after exactly ``seconds`` (stamina's backoff hook returns that)."""

    def __init__(self, seconds: float, reset_at: datetime | None, status: int) -> None:
        super().__init__(f"rate limited for {seconds:.1f}s")
        self.seconds, self.reset_at, self.status = seconds, reset_at, status


WRITE_NAMESPACES = ("actions", "repos", "git", "pulls", "issues", "checks")
"""githubkit's REST namespaces the executor's actions and fix pull requests write through."""


def etag_after(response: httpx.Response, sent: str | None, *, what: str) -> str | None:
    """The ETag a conditional read sends next time, from the answer to one that sent ``sent``.

    A 304 keeps the tag it answered to (or the one it names); a full answer without a tag has
    none, since the old tag would stand for a body it no longer describes. A 304 to a read that
    sent no tag is refused: "unchanged" from nothing is a faulty proxy or server, not an answer.
    """
    named: str | None = response.headers.get("etag")
    if response.status_code == 304:
        if not sent:
            raise GitHubError(f"{what} answered 304 to a read without If-None-Match", status=304)
        return named or sent
    return named


def _backoff(exc: Exception) -> bool | float:
    if isinstance(exc, _RateLimited):
        return exc.seconds
    return isinstance(exc, _Transient)


class _SharedTransport(httpx.AsyncBaseTransport):
    """Lets githubkit's per-request clients reuse our pool; only the owner closes it."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self._inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        return None


def _reraise_auth_failure(cause: BaseException) -> None:
    """An installation token GitHub refused (githubkit wraps it): a refusal, retried only if transient."""
    if isinstance(cause, GitHubUnavailable):
        raise _Transient(str(cause), cause.status) from cause
    if isinstance(cause, GitHubError):
        raise cause


def _split(repository: str) -> tuple[str, str]:
    owner, _, name = repository.partition("/")
    if not owner or not name or "/" in name:
        raise ValueError(f"repository must be 'owner/name', got {repository!r}")
    return owner, name


def _unset_to_none(value: Any) -> Any:
    return None if value is UNSET else value


class GitHubClient:
    """Calls GitHub as an App installation when ``app`` is given, else with ``token`` (or anonymously).

    When both are configured the App wins: it is the production identity, with a rate limit per
    installation rather than one person's, and tokens that expire within the hour.
    """

    def __init__(
        self,
        *,
        base_url: str = "https://api.github.com",
        token: str | None = None,
        timeout: float = 10.0,
        max_retry_seconds: float = 30.0,
        app: GitHubAppAuth | None = None,
        max_in_flight: int = MAX_IN_FLIGHT,
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._token = token
        self._max_retry_seconds = max_retry_seconds
        self._in_flight = asyncio.Semaphore(max_in_flight)
        # every slot keeps its connection alive between requests: no connect per request
        limits = httpx.Limits(max_connections=max_in_flight, max_keepalive_connections=max_in_flight)
        self._transport = AiohttpTransport(limits=limits)
        shared = _SharedTransport(self._transport)
        self.app = app
        self._app_auth = InstallationAuth(app, self._base_url) if app is not None else None
        auth: Any = TokenAuthStrategy(token) if token else UnauthAuthStrategy()
        if self._app_auth is not None:
            auth = InstallationAuthStrategy(self._app_auth)
        self._kit: GitHub[Any] = GitHub(
            auth,
            base_url=self._base_url,
            timeout=timeout,
            async_transport=shared,
            http_cache=False,
            auto_retry=False,
            user_agent="ci-medic",
        )
        self._http = httpx.AsyncClient(
            transport=shared,
            timeout=timeout,
            headers={"User-Agent": "ci-medic", "X-GitHub-Api-Version": "2022-11-28"},
        )
        trace_client(self._http)  # the transport is not httpx's own, which the global hook wraps

    @classmethod
    def from_settings(cls, settings: Settings) -> GitHubClient:
        """The client the composition root builds: App auth when configured, else the token."""
        token = settings.github_token.get_secret_value() if settings.github_token else None
        app = GitHubAppAuth.from_settings(settings)
        return cls(
            base_url=settings.github_api_url,
            token=token,
            app=app,
            max_retry_seconds=settings.github_max_wait_seconds,
            max_in_flight=settings.github_max_in_flight,
        )

    async def aclose(self) -> None:
        await self._http.aclose()
        await self._transport.aclose()
        if self.app is not None:
            await self.app.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    def warm(self) -> None:
        """Load githubkit's REST namespaces now (it imports each on first use): a service calls
        this while starting, so its first write does not hold the event loop for the import."""
        rest = self._kit.rest
        for namespace in WRITE_NAMESPACES:
            getattr(rest, namespace)

    @property
    def rest(self) -> Any:
        """githubkit's REST namespaces, for the request builders in sibling modules (``changes``)."""
        return self._kit.rest

    async def call(self, route: str, send: Callable[[], Awaitable[T]]) -> T:
        """One request through the retry, rate-limit and error mapping every call here uses."""
        return await self._call(route, send)

    async def read(self, route: str, path: str, *, headers: dict[str, str] | None = None) -> httpx.Response:
        """One GET built without githubkit (:meth:`_read`), for sibling modules' conditional reads."""
        return await self._read(route, path, headers=headers)

    # --- runs and jobs ---------------------------------------------------------------------

    async def get_run(self, repository: str, run_id: int) -> WorkflowRun:
        run, _ = await self.get_run_if_changed(repository, run_id, etag=None)
        if run is None:  # unreachable: get_run_if_changed refuses a 304 it did not ask for
            raise GitHubError(f"run {run_id} answered without a body", route="GET run")
        return run

    async def get_run_if_changed(
        self, repository: str, run_id: int, *, etag: str | None
    ) -> tuple[WorkflowRun | None, str | None]:
        """The run and its ETag; ``(None, etag)`` when it is unchanged since ``etag`` (GitHub's 304,
        which costs no rate limit)."""
        owner, repo = _split(repository)
        response = await self._read(
            "GET /repos/{owner}/{repo}/actions/runs/{run_id}",
            f"/repos/{owner}/{repo}/actions/runs/{run_id}",
            headers={"If-None-Match": etag} if etag else None,
        )
        new_etag = etag_after(response, etag, what=f"run {run_id}")
        if response.status_code == 304:
            return None, new_etag
        return _run_from_json(response.json()), new_etag

    async def list_runs(
        self,
        repository: str,
        *,
        status: str | None = None,
        etag: str | None = None,
        branch: str | None = None,
        head_sha: str | None = None,
        per_page: int = 100,
        page: int = 1,
    ) -> RunsPage:
        """A page of runs, newest first; with ``etag`` an unchanged list answers ``not_modified`` for free."""
        owner, repo = _split(repository)
        headers = {"If-None-Match": etag} if etag else None
        filters = {"status": status, "branch": branch, "head_sha": head_sha}
        params: dict[str, str | int] = {k: v for k, v in filters.items() if v is not None}
        response = await self._read(
            "GET /repos/{owner}/{repo}/actions/runs",
            f"/repos/{owner}/{repo}/actions/runs",
            params=params | {"per_page": per_page} | ({"page": page} if page > 1 else {}),
            headers=headers,
        )
        new_etag = etag_after(response, etag, what=f"the runs of {repository}")
        if response.status_code == 304:
            return RunsPage(runs=(), etag=new_etag, not_modified=True)
        runs = response.json().get("workflow_runs", [])
        return RunsPage(runs=tuple(_run_from_json(run) for run in runs), etag=new_etag)

    async def list_workflow_runs(
        self,
        repository: str,
        workflow_id: int,
        *,
        status: str | None = None,
        branch: str | None = None,
        per_page: int = 30,
    ) -> RunsPage:
        """The newest page of one workflow's runs: a short page reaches further back in its history
        than the same page of every workflow of the repository."""
        owner, repo = _split(repository)
        filters = {"status": status, "branch": branch}
        params: dict[str, str | int] = {k: v for k, v in filters.items() if v is not None}
        response = await self._read(
            "GET /repos/{owner}/{repo}/actions/workflows/{workflow_id}/runs",
            f"/repos/{owner}/{repo}/actions/workflows/{workflow_id}/runs",
            params=params | {"per_page": per_page},
        )
        runs = response.json().get("workflow_runs", [])
        return RunsPage(runs=tuple(_run_from_json(run) for run in runs), etag=response.headers.get("etag"))

    async def list_failed_jobs(self, repository: str, run_id: int) -> list[Job]:
        """Failed jobs of the latest attempt, each with the names of the steps that broke."""
        jobs = await self.list_jobs(repository, run_id, latest=True)
        return [job for job in jobs if job_failed(job.conclusion)]

    async def list_jobs(self, repository: str, run_id: int, *, latest: bool = True) -> list[Job]:
        """Jobs of the latest attempt, or (``latest=False``) of every attempt, each with its attempt."""
        owner, repo = _split(repository)
        which: Literal["latest", "all"] = "latest" if latest else "all"
        jobs: list[Job] = []
        page = 1
        while True:
            response = await self._read(
                "GET /repos/{owner}/{repo}/actions/runs/{run_id}/jobs",
                f"/repos/{owner}/{repo}/actions/runs/{run_id}/jobs",
                params={"filter": which, "per_page": 100, "page": page},
            )
            body = response.json()
            batch = body.get("jobs", [])
            jobs += [_job_from_json(job) for job in batch]
            if len(batch) < 100 or len(jobs) >= int(body.get("total_count", 0)):
                break
            page += 1
        return jobs

    async def list_org_repositories(self, organisation: str) -> list[str]:
        """``owner/name`` of every repository of the organisation that is not archived."""
        if not ACCOUNT_NAME.match(organisation):
            raise ValueError(f"not a GitHub organisation name: {organisation!r}")
        names: list[str] = []
        page = 1
        while True:
            response = await self._call(
                "GET /orgs/{org}/repos",
                partial(self._kit.rest.repos.async_list_for_org, organisation, per_page=100, page=page),
            )
            batch = response.raw_response.json()
            if not isinstance(batch, list):
                raise GitHubError(f"GET /orgs/{{org}}/repos: not a list for {organisation!r}")
            names += [r["full_name"] for r in batch if isinstance(r, dict) and not r.get("archived")]
            if len(batch) < 100:
                return names
            page += 1

    # --- logs ------------------------------------------------------------------------------

    async def fetch_job_log(
        self, repository: str, job_id: int, *, max_bytes: int = 2 * 1024 * 1024
    ) -> JobLog:
        """Stream a job log and keep its tail; a missing or expired log is a reason, not an error.

        Uses httpx directly rather than githubkit: githubkit only keeps a streamed body readable
        while its task-local client is open, and its redirect following would hand our token
        to the log storage host. We take the 302 ourselves and fetch the pre-signed URL bare.
        """
        owner, repo = _split(repository)
        route = "GET /repos/{owner}/{repo}/actions/jobs/{job_id}/logs"
        url = f"{self._base_url}/repos/{owner}/{repo}/actions/jobs/{job_id}/logs"
        try:
            redirect = await self._call(route, lambda: self._get(url, auth=True), raw=lambda r: r)
        except NotFound:
            return JobLog(
                text="", unavailable_reason="log not found (404): expired, deleted or never written"
            )
        except RateLimitExhausted:
            raise
        except GitHubError as exc:
            if exc.status in (403, 410):
                return JobLog(text="", unavailable_reason=f"log not available ({exc.status})")
            raise
        location = redirect.headers.get("location")
        if redirect.status_code not in (301, 302, 303, 307, 308) or not location:
            return JobLog(
                text="", unavailable_reason=f"unexpected answer {redirect.status_code} instead of a redirect"
            )
        target = str(redirect.url.join(location))

        async def download() -> LogTail:
            tail = LogTail(max_bytes)
            async with self._http.stream("GET", target) as response:
                observe("GET job-log-download", response)
                if response.status_code >= 500:
                    raise _Transient(f"log download answered {response.status_code}", response.status_code)
                if response.status_code >= 400:
                    raise GitHubError(
                        "log download URL refused", status=response.status_code, route="log-download"
                    )
                async for chunk in response.aiter_bytes():
                    tail.feed(chunk)
            return tail

        try:
            tail = await self._retrying("GET job-log-download", download)
        except GitHubError as exc:
            if exc.status is not None and 400 <= exc.status < 500:
                return JobLog(text="", unavailable_reason=f"log download refused ({exc.status})")
            raise
        text, dropped = tail.text()
        return JobLog(text=text, total_bytes=tail.total_bytes, dropped_bytes=dropped)

    async def _read(
        self,
        route: str,
        path: str,
        *,
        params: dict[str, str | int] | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        """A GET the services make for every failure (runs, jobs), sent with httpx directly.

        githubkit's request building cost about a quarter of each such request's CPU (a
        client, its hooks and models per call); these few reads need only a path, a query and
        our own JSON mapping. Auth, retries, rate limits and errors are the same as every call's.
        """
        url = f"{self._base_url}{path}"
        return await self._call(
            route, lambda: self._get(url, auth=True, params=params, headers=headers), raw=lambda r: r
        )

    async def _get(
        self,
        url: str,
        *,
        auth: bool,
        params: dict[str, str | int] | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        sent = {"Accept": "application/vnd.github+json"} | (headers or {})
        if auth and self._app_auth is not None:
            return await self._http.get(
                url, params=params, headers=sent, follow_redirects=False, auth=self._app_auth
            )
        if auth and self._token:
            sent["Authorization"] = f"Bearer {self._token}"
        return await self._http.get(url, params=params, headers=sent, follow_redirects=False)

    # --- actions ---------------------------------------------------------------------------

    async def rerun_failed_jobs(self, repository: str, run_id: int) -> None:
        owner, repo = _split(repository)
        await self._call(
            "POST /repos/{owner}/{repo}/actions/runs/{run_id}/rerun-failed-jobs",
            lambda: self._kit.rest.actions.async_re_run_workflow_failed_jobs(owner, repo, run_id),
        )

    async def rerun_workflow(self, repository: str, run_id: int) -> None:
        owner, repo = _split(repository)
        await self._call(
            "POST /repos/{owner}/{repo}/actions/runs/{run_id}/rerun",
            lambda: self._kit.rest.actions.async_re_run_workflow(owner, repo, run_id),
        )

    async def delete_caches(self, repository: str, key: str) -> int:
        """Delete every cache with this key; returns how many went (0 when none matched)."""
        owner, repo = _split(repository)
        try:
            response = await self._call(
                "DELETE /repos/{owner}/{repo}/actions/caches",
                lambda: self._kit.rest.actions.async_delete_actions_cache_by_key(owner, repo, key=key),
            )
        except NotFound:
            return 0
        return int(response.raw_response.json().get("total_count", 0))

    # --- the one place that turns HTTP outcomes into retries and errors --------------------

    async def _call(
        self,
        route: str,
        send: Callable[[], Awaitable[T]],
        raw: Callable[[T], httpx.Response] = lambda r: r.raw_response,  # type: ignore[attr-defined]
    ) -> T:
        started = time.monotonic()

        async def once() -> T:
            try:
                result = await send()
            except RequestFailed as exc:
                response = exc.response.raw_response
                observe(route, response)
                self._raise_for(route, response, started)
                raise GitHubError(
                    f"{route} answered {response.status_code}", status=response.status_code
                ) from exc
            except RequestTimeout as exc:
                observe_failure(route)
                raise _Transient(f"{route} timed out") from exc
            except RequestError as exc:
                _reraise_auth_failure(exc.exc)
                observe_failure(route)
                raise _Transient(f"{route} failed: {exc.exc!r}") from exc
            except httpx.TransportError as exc:
                observe_failure(route)
                raise _Transient(f"{route} failed: {exc!r}") from exc
            response = raw(result)
            observe(route, response)
            if response.status_code >= 400:
                self._raise_for(route, response, started)
            return result

        return await self._retrying(route, once)

    async def _retrying(self, route: str, attempt_once: Callable[[], Awaitable[T]]) -> T:
        try:
            async for attempt in stamina.retry_context(
                on=_backoff,
                attempts=RETRY_ATTEMPTS,
                timeout=self._max_retry_seconds,
                wait_initial=0.2,
                wait_max=5.0,
                wait_jitter=0.2,
            ):
                with attempt:
                    async with self._in_flight:  # held for one attempt, released before a retry waits
                        return await attempt_once()
        except _RateLimited as exc:
            message = f"{route}: rate limit still exhausted after waiting"
            raise RateLimitExhausted(message, reset_at=exc.reset_at, status=exc.status, route=route) from exc
        except _Transient as exc:
            raise GitHubUnavailable(str(exc), status=exc.status, route=route) from exc
        except httpx.TransportError as exc:
            raise GitHubUnavailable(f"{route} failed: {exc!r}", route=route) from exc
        raise AssertionError("stamina yielded no attempt")  # pragma: no cover

    def _raise_for(self, route: str, response: httpx.Response, started: float) -> None:
        status = response.status_code
        if status >= 500:
            raise _Transient(f"{route} answered {status}", status)
        wait = rate_limit_wait(response)
        if wait is not None:
            elapsed = time.monotonic() - started
            if elapsed + wait.seconds > self._max_retry_seconds:
                raise RateLimitExhausted(
                    f"{route}: {wait.reason}, reset in {wait.seconds:.0f}s exceeds the retry budget",
                    reset_at=wait.reset_at, status=status, route=route,
                )  # fmt: skip
            raise _RateLimited(wait.seconds, wait.reset_at, status)
        message = _error_message(response)
        if status == 404:
            raise NotFound(f"{route}: {message}", status=status, route=route)
        raise GitHubError(f"{route} answered {status}: {message}", status=status, route=route)
